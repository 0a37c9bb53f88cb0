use spine::prelude::*;

#[pipeline(event = "text.submitted")]
mod steps {
    #[publish(topic = "out", event = "text.done", topic = "elsewhere")]
    pub fn only(v: serde_json::Value) -> serde_json::Value {
        v
    }
}

fn main() {}
