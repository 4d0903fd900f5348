//! The `peerbook` binary.

fn main() {
    println!("peerbook {}", env!("CARGO_PKG_VERSION"));
}
