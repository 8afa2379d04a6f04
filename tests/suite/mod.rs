mod cli;
mod common;
mod invariants;
mod kpis;
mod playbook;
mod publish;
mod sources;
mod worked_examples;
