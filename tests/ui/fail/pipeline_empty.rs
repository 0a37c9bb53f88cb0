use spine::prelude::*;

#[pipeline(event = "text.submitted")]
mod nothing {}

fn main() {}
