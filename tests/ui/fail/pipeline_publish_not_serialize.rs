use spine::prelude::*;

pub struct Opaque;

#[pipeline(event = "text.submitted")]
mod steps {
    use super::*;

    #[publish(topic = "out", event = "opaque")]
    pub fn make(_v: serde_json::Value) -> Opaque {
        Opaque
    }
}

fn main() {
    let _ = spine::handlers![steps];
}
