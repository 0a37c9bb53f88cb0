use spine::prelude::*;

#[derive(Deserialize)]
pub struct Text {
    pub body: String,
}

#[pipeline(event = "text.submitted")]
mod shout {
    use super::*;

    // The last step's output goes nowhere: it is neither a reply nor published.
    pub fn upper(t: Text) -> String {
        t.body.to_uppercase()
    }
}

fn main() {
    let _ = spine::handlers![shout];
}
