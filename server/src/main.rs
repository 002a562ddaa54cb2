fn main() {
    eprintln!("plasma-stream-server: not built yet");
    std::process::exit(2);
}
