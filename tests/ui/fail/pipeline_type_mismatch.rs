use spine::prelude::*;

#[derive(Deserialize)]
pub struct Text {
    pub body: String,
}

pub struct Words(pub usize);

#[pipeline(event = "text.submitted", topic = "texts")]
mod count {
    use super::*;

    pub fn split(t: Text) -> Vec<String> {
        t.body.split(' ').map(str::to_owned).collect()
    }

    // Takes `Words`, but `split` returns `Vec<String>`.
    pub fn total(w: Words) {
        let _ = w.0;
    }
}

fn main() {
    let _ = spine::handlers![count];
}
