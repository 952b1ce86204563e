// rust-embed compiles every file of web/ into the binary and rustc tracks the files it read, but not a file
// added to or removed from the folder: this makes cargo rebuild the local server when web/ changes at all.
fn main() {
    println!("cargo:rerun-if-changed=../../web");
}
