use spine::prelude::*;

#[pipeline(event = "text.submitted", args(lang = "en"), args(max_len = 280))]
mod steps {
    pub fn first(v: serde_json::Value, #[arg] lang: String) -> serde_json::Value {
        let _ = lang;
        v
    }
}

#[pipeline(event = "text.other", args(lang = "en", lang = "de"))]
mod other {
    pub fn first(v: serde_json::Value, #[arg] lang: String) -> serde_json::Value {
        let _ = lang;
        v
    }
}

fn main() {}
