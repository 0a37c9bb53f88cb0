use spine::prelude::*;

#[on(topic = "a", batch)]
async fn bare(_orders: Vec<serde_json::Value>) {}

#[on(topic = "b", batch(linger = "20ms"))]
async fn no_max(_orders: Vec<serde_json::Value>) {}

#[on(topic = "c", batch(max = 0, linger = "soon", size = 3))]
async fn wrong_values(_orders: Vec<serde_json::Value>) {}

fn main() {}
