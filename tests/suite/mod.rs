mod cli;
mod common;
mod invariants;
mod playbook;
mod sources;
mod worked_examples;
