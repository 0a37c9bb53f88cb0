use spine::prelude::*;

#[pipeline(event = "text.submitted")]
mod steps {
    pub struct Helper;

    pub fn first(v: serde_json::Value) -> serde_json::Value {
        v
    }
}

fn main() {}
