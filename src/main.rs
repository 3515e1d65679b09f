fn main() -> std::process::ExitCode {
    calseta::cli::main()
}
