fn main() {
    eprintln!("plasma-stream-cli: not built yet");
    std::process::exit(2);
}
