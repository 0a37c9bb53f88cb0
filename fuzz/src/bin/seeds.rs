//! Writes the valid sample payloads into the corpus directory given as the
//! first argument (`scripts/fuzz` does, when the corpus is empty).

fn main() {
    let dir = std::env::args().nth(1).expect("usage: seeds <corpus dir>");
    std::fs::create_dir_all(&dir).expect("corpus dir");
    for (i, s) in spine_fuzz::fixture().samples.iter().enumerate() {
        spine_fuzz::decode(s).expect("a sample decodes");
        std::fs::write(format!("{dir}/sample-{i}"), s).expect("seed written");
    }
}
