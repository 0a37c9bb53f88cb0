use spine::prelude::*;

struct A;
struct B;
struct C;
struct D;
struct E;
struct F;

#[pipeline(event = "text.submitted")]
mod steps {
    use super::*;

    pub fn first(
        v: serde_json::Value,
        _m: Meta,
        _c: Context,
        _r: Raw,
        _a: State<A>,
        _b: State<B>,
        _cc: State<C>,
        _d: State<D>,
    ) -> serde_json::Value {
        v
    }

    pub fn second(_v: serde_json::Value, _e: State<E>, _f: State<F>) {}
}

fn main() {}
