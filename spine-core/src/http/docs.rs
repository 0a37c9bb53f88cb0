//! `GET /docs`: the endpoints' page, written here with no external assets
//! (it works offline and behind a strict CSP-less proxy alike). The page
//! reads `/openapi.json`, lists each operation with its body and reply
//! schemas, and has a form per operation to try it: key, credential, body,
//! and the response as the service sent it.

use axum::response::Html;

/// The page. Its script builds the list from the OpenAPI document, so the
/// page and the document cannot disagree.
pub(crate) async fn page() -> Html<&'static str> {
    Html(PAGE)
}

const PAGE: &str = r##"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>API · Spine</title>
<style>
  body { font: 15px/1.45 system-ui, sans-serif; margin: 0; color: #1d2330; background: #f6f7f9; }
  header { background: #1d2330; color: #fff; padding: 14px 24px; }
  header h1 { margin: 0; font-size: 20px; }
  header p { margin: 4px 0 0; color: #c5cad6; }
  main { max-width: 1040px; margin: 0 auto; padding: 16px 24px 48px; }
  section.op { background: #fff; border: 1px solid #dde1e8; border-radius: 8px; margin: 16px 0; padding: 14px 18px; }
  .method { display: inline-block; min-width: 56px; text-align: center; font-weight: 700; color: #fff;
            background: #2f7d4f; border-radius: 4px; padding: 2px 8px; margin-right: 8px; }
  .method.put { background: #8a5a00; } .method.patch { background: #5a4a9a; }
  code.path { font-size: 16px; font-weight: 600; }
  .tag { color: #5b6474; margin-left: 8px; font-size: 13px; }
  details { margin: 8px 0; } summary { cursor: pointer; color: #364152; }
  pre:empty { display: none; }
  pre { background: #f1f3f6; padding: 10px; border-radius: 6px; overflow: auto; font-size: 13px; margin: 6px 0; }
  form { display: grid; grid-template-columns: 130px 1fr; gap: 8px 12px; margin-top: 10px; align-items: start; }
  form label { padding-top: 6px; color: #364152; }
  form input, form textarea { font: 13px ui-monospace, monospace; padding: 6px; border: 1px solid #c9ced8; border-radius: 4px; }
  form textarea { min-height: 120px; }
  form button { grid-column: 2; justify-self: start; padding: 6px 18px; font-weight: 600; cursor: pointer; }
  .status { font-weight: 700; } .ok { color: #2f7d4f; } .err { color: #b3261e; }
</style>
</head>
<body>
<header><h1 id="title">API</h1><p id="about">Loading /openapi.json …</p></header>
<main id="ops"></main>
<script>
"use strict";
const el = (tag, attrs = {}, ...kids) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) { if (k === "class") e.className = v; else e.setAttribute(k, v); }
  for (const k of kids) e.append(k);
  return e;
};
const pretty = v => JSON.stringify(v, null, 2);
let doc;
function resolve(s, seen = new Set()) {
  if (!s || typeof s !== "object") return s;
  if (Array.isArray(s)) return s.map(x => resolve(x, seen));
  if (s.$ref) {
    const name = s.$ref.split("/").pop();
    if (seen.has(name)) return { $ref: name };
    return resolve(doc.components.schemas[name], new Set([...seen, name]));
  }
  const out = {};
  for (const [k, v] of Object.entries(s)) out[k] = resolve(v, seen);
  return out;
}
function example(s, depth = 0) {
  s = resolve(s);
  if (!s || depth > 5) return null;
  if (s.examples && s.examples.length) return s.examples[0];
  if (s.default !== undefined) return s.default;
  if (s.const !== undefined) return s.const;
  if (s.enum) return s.enum[0];
  const alt = s.anyOf || s.oneOf;
  if (alt) return example(alt[0], depth + 1);
  let t = Array.isArray(s.type) ? s.type.find(x => x !== "null") : s.type;
  if (!t && s.properties) t = "object";
  switch (t) {
    case "object": {
      const o = {};
      for (const [k, v] of Object.entries(s.properties || {})) o[k] = example(v, depth + 1);
      return o;
    }
    case "array": return [example(s.items, depth + 1)];
    case "integer": return 0;
    case "number": return 0;
    case "boolean": return false;
    case "string": return "";
    default: return null;
  }
}
function operation(path, method, op) {
  const id = op.operationId;
  const body = op.requestBody.content["application/json"].schema;
  const ok = op.responses["200"].content["application/json"].schema;
  const schemes = (op.security || []).flatMap(Object.keys);
  const form = el("form", { id: "form-" + id });
  const keyParam = (op.parameters || []).find(p => p.in === "path");
  if (keyParam) {
    form.append(el("label", { for: id + "-key" }, keyParam.name + " (key)"),
                el("input", { id: id + "-key", name: "key", required: "" }));
  }
  if (schemes.includes("apiKey"))
    form.append(el("label", { for: id + "-apikey" }, "X-API-Key"),
                el("input", { id: id + "-apikey", name: "apikey", type: "password", autocomplete: "off" }));
  if (schemes.includes("bearer"))
    form.append(el("label", { for: id + "-bearer" }, "Bearer token"),
                el("input", { id: id + "-bearer", name: "bearer", type: "password", autocomplete: "off" }));
  const text = el("textarea", { id: id + "-body", name: "body", spellcheck: "false" });
  text.value = pretty(example(body));
  form.append(el("label", { for: id + "-body" }, "Body (JSON)"), text,
              el("button", { type: "submit", id: id + "-send" }, "Send"));
  const status = el("div", { class: "status", id: id + "-status" });
  const result = el("pre", { id: id + "-result" });
  form.addEventListener("submit", async ev => {
    ev.preventDefault();
    let url = path;
    if (keyParam) url = url.replace("{" + keyParam.name + "}", encodeURIComponent(form.key.value));
    const headers = { "content-type": "application/json" };
    if (form.apikey && form.apikey.value) headers["x-api-key"] = form.apikey.value;
    if (form.bearer && form.bearer.value) headers["authorization"] = "Bearer " + form.bearer.value;
    status.textContent = "Sending…"; status.className = "status";
    try {
      const r = await fetch(url, { method: method.toUpperCase(), headers, body: text.value });
      const t = await r.text();
      let shown = t; try { shown = pretty(JSON.parse(t)); } catch (_) {}
      status.textContent = r.status + " " + r.statusText;
      status.className = "status " + (r.ok ? "ok" : "err");
      result.textContent = shown;
    } catch (e) {
      status.textContent = "The request failed: " + e; status.className = "status err";
    }
  });
  const head = el("div", {}, el("span", { class: "method " + method }, method.toUpperCase()),
                  el("code", { class: "path" }, path));
  for (const t of op.tags || []) head.append(el("span", { class: "tag" }, "#" + t));
  return el("section", { class: "op", id: "op-" + id },
    head, el("p", {}, op.summary || ""), el("p", {}, op.description || ""),
    el("details", {}, el("summary", {}, "Body schema"), el("pre", {}, pretty(resolve(body)))),
    el("details", {}, el("summary", {}, "Response schema (200)"), el("pre", {}, pretty(resolve(ok)))),
    el("details", {}, el("summary", {}, "Errors"),
       el("pre", {}, Object.entries(op.responses).filter(([c]) => c !== "200")
                          .map(([c, r]) => c + "  " + r.description).join("\n"))),
    form, status, result);
}
fetch("openapi.json").then(r => r.json()).then(d => {
  doc = d;
  document.getElementById("title").textContent = d.info.title + " " + d.info.version;
  document.getElementById("about").textContent = d.info.description;
  const ops = document.getElementById("ops");
  const paths = Object.entries(d.paths);
  if (!paths.length) ops.append(el("p", {}, "No handler is served over HTTP: add http = \"POST /...\" to #[on], or [http.endpoints.<handler>] route in spine.toml."));
  for (const [path, item] of paths)
    for (const [method, op] of Object.entries(item)) ops.append(operation(path, method, op));
  document.body.dataset.ready = "yes";
}).catch(e => { document.getElementById("about").textContent = "Cannot read /openapi.json: " + e; });
</script>
</body>
</html>
"##;
