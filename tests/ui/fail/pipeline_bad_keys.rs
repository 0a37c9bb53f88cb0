use spine::prelude::*;

#[pipeline(event = "text.submitted", max_concurrent = 0, args(lang = en), retries = 3)]
mod steps {
    pub fn first(v: serde_json::Value, #[arg] lang: String) -> serde_json::Value {
        let _ = lang;
        v
    }

    #[publish(topic = "out")]
    pub fn second(v: serde_json::Value) -> serde_json::Value {
        v
    }
}

fn main() {}
