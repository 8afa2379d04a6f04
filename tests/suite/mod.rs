mod cli;
mod common;
mod invariants;
mod kpis;
mod playbook;
mod sources;
mod worked_examples;
