fn main() {
    eprintln!("plasma-stream-bench: not built yet");
    std::process::exit(2);
}
