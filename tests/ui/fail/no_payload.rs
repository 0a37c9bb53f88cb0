use spine::prelude::*;

#[on(event = "tick")]
async fn tick() {}

fn main() {}
