use clap::Parser;

fn main() {
    let cli = vitals::cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = runtime.block_on(vitals::cli::run(cli)) {
        // Whatever a store answered, no credential reaches the terminal.
        let text = vitals::storage::clean(&e.to_string());
        if text.starts_with("error") {
            eprintln!("{text}");
        } else {
            eprintln!("error: {text}");
        }
        std::process::exit(e.exit_code());
    }
}
