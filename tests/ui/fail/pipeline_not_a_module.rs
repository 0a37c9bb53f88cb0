use spine::prelude::*;

#[pipeline(event = "text.submitted")]
fn single(v: serde_json::Value) -> serde_json::Value {
    v
}

fn main() {}
