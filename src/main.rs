fn main() {
    println!("conveyor {}", env!("CARGO_PKG_VERSION"));
}
