mod cli;
mod common;
mod invariants;
mod playbook;
mod worked_examples;
