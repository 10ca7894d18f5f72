//! tolem-sdk's public API as sorted text lines, one per item, from rustdoc's JSON.
//!
//! Items are named by the path a user writes (`tolem_sdk::MppClient`, not the private
//! `tolem_sdk::client::MppClient` where it is defined), so moving code between private modules
//! changes nothing here. rustdoc's numeric ids differ between builds and are never printed: every
//! id is resolved to a path. A JSON shape this file does not know renders as `<kind ...>`, a
//! stable marker that shows up in the snapshot's diff, rather than a panic.
//!
//! What is listed, and why each matters to a user's build:
//! - modules, constants, statics, type aliases, re-exports of other crates' items;
//! - structs: a plain struct whose fields are all public and that is not `#[non_exhaustive]` lists
//!   its field names on its own line (`{ a, b }`), since adding a field breaks a struct literal;
//!   otherwise `{ .. }`. Each public field is a line with its type;
//! - enums: an exhaustive enum lists its variants on its line (adding one breaks a `match`), a
//!   `#[non_exhaustive]` one says so; each variant is a line, with its fields;
//! - traits with their methods, associated types and constants; the trait's line names the items
//!   an implementor must write, since a new one breaks every implementation;
//! - functions and inherent methods with generics, bounds, arguments and return type;
//! - the trait impls of each public type, including the auto traits a user can rely on (Send,
//!   Sync, Unpin, UnwindSafe, RefUnwindSafe) and derives (Clone, Debug, ...). Blanket impls
//!   (`impl<T> From<T> for T`, `Instrument` for every type) follow from those and are left out, as
//!   are the compiler's unstable markers (Freeze, UnsafeUnpin, StructuralPartialEq), which change
//!   with the toolchain, not with this crate.

use std::collections::{BTreeSet, HashMap, HashSet};

use serde_json::Value;

/// Auto traits a user can name on stable Rust; the others rustdoc lists are unstable.
const AUTO_TRAITS: [&str; 5] = ["Send", "Sync", "Unpin", "UnwindSafe", "RefUnwindSafe"];
/// Impls that say nothing a user of a stable toolchain can rely on.
const UNSTABLE_MARKERS: [&str; 3] = ["Freeze", "UnsafeUnpin", "StructuralPartialEq"];
/// Re-exports nest at most this deep (`pub use` of a module that re-exports...), which also ends
/// a cycle of glob re-exports.
const DEPTH_MAX: usize = 16;

/// The public API of the crate whose rustdoc JSON `doc` is, as sorted, unique lines.
pub fn public_api(doc: &Value) -> Vec<String> {
    let api = Api::new(doc);
    let mut lines = BTreeSet::new();
    let root = doc["root"].to_string();
    if let Some(root_item) = api.item_by_key(&root) {
        let name = str_of(&root_item["name"]).to_string();
        api.module(root_item, &name, 0, &mut lines);
    } else {
        lines.insert("<no root module>".to_string());
    }
    lines.into_iter().collect()
}

struct Api<'a> {
    /// Every item by its id, as an object keyed by the id's text.
    index: &'a Value,
    /// Where each item, this crate's and others', is defined.
    paths: &'a Value,
    /// The public path of each of this crate's items: the shortest one a user can write.
    public_paths: HashMap<String, String>,
}

impl<'a> Api<'a> {
    fn new(doc: &'a Value) -> Self {
        let mut api = Api {
            index: &doc["index"],
            paths: &doc["paths"],
            public_paths: HashMap::new(),
        };
        let mut public_paths = HashMap::new();
        if let Some(root) = api.item_by_key(&doc["root"].to_string()) {
            let name = str_of(&root["name"]).to_string();
            api.collect_paths(root, &name, 0, &mut HashSet::new(), &mut public_paths);
        }
        api.public_paths = public_paths;
        api
    }

    fn item_by_key(&self, key: &str) -> Option<&'a Value> {
        self.index.get(key)
    }

    fn item(&self, id: &Value) -> Option<&'a Value> {
        self.index.get(id.to_string())
    }

    /// Every item reachable from `module` at `path`, recorded with its shortest path.
    fn collect_paths(
        &self,
        module: &Value,
        path: &str,
        depth: usize,
        walking: &mut HashSet<String>,
        found: &mut HashMap<String, String>,
    ) {
        let key = module["id"].to_string();
        if depth > DEPTH_MAX || !walking.insert(key.clone()) {
            return;
        }
        record(found, &key, path);
        for (item, name) in self.module_items(module) {
            let item_path = format!("{path}::{name}");
            let item_key = item["id"].to_string();
            if item["inner"].get("module").is_some() {
                self.collect_paths(item, &item_path, depth + 1, walking, found);
            } else {
                record(found, &item_key, &item_path);
                for variant in array(&item["inner"]["enum"]["variants"]) {
                    if let Some(variant) = self.item(variant) {
                        let variant_path = format!("{item_path}::{}", str_of(&variant["name"]));
                        record(found, &variant["id"].to_string(), &variant_path);
                    }
                }
            }
        }
        walking.remove(&key);
    }

    /// The public items of a module with the names they are reached by: `pub use` of this
    /// crate's items is followed (a glob's module contributes its items), other crates' items
    /// stay re-exports.
    fn module_items(&self, module: &Value) -> Vec<(&'a Value, String)> {
        let mut out = Vec::new();
        for id in array(&module["inner"]["module"]["items"]) {
            let Some(item) = self.item(id) else { continue };
            if item["visibility"] != "public" {
                continue;
            }
            if let Some(import) = item["inner"].get("use") {
                let Some(target) = self.item(&import["id"]).filter(|t| t["crate_id"] == 0) else {
                    out.push((item, str_of(&import["name"]).to_string()));
                    continue;
                };
                if import["is_glob"] == true {
                    if target["inner"].get("module").is_some() {
                        out.extend(self.module_items(target));
                    }
                } else {
                    out.push((target, str_of(&import["name"]).to_string()));
                }
            } else if let Some(name) = item["name"].as_str() {
                out.push((item, name.to_string()));
            }
        }
        out
    }

    fn module(&self, module: &Value, path: &str, depth: usize, lines: &mut BTreeSet<String>) {
        if depth > DEPTH_MAX {
            lines.insert(format!("<re-exports nested too deep at {path}>"));
            return;
        }
        lines.insert(format!("pub mod {path}"));
        for (item, name) in self.module_items(module) {
            let item_path = format!("{path}::{name}");
            if item["inner"].get("module").is_some() {
                self.module(item, &item_path, depth + 1, lines);
            } else {
                self.item_lines(item, &item_path, lines);
            }
        }
    }

    fn item_lines(&self, item: &Value, path: &str, lines: &mut BTreeSet<String>) {
        let Some((kind, inner)) = item["inner"].as_object().and_then(|o| o.iter().next()) else {
            lines.insert(format!("<item without a kind> {path}"));
            return;
        };
        let attrs = attrs(item);
        match kind.as_str() {
            "struct" => self.structure(inner, path, &attrs, lines),
            "enum" => self.enumeration(inner, path, &attrs, lines),
            "trait" => self.trait_lines(inner, path, lines),
            "function" => {
                lines.insert(format!("pub {}", self.function(inner, path)));
            }
            "constant" => {
                lines.insert(format!("pub const {path}: {}", self.ty(&inner["type"])));
            }
            "static" => {
                let mutable = if inner["is_mutable"] == true {
                    "mut "
                } else {
                    ""
                };
                lines.insert(format!(
                    "pub static {mutable}{path}: {}",
                    self.ty(&inner["type"])
                ));
            }
            "type_alias" => {
                let (params, wheres) = self.generics(&inner["generics"]);
                lines.insert(format!(
                    "pub type {path}{params} = {}{wheres}",
                    self.ty(&inner["type"])
                ));
            }
            "use" => {
                let target = self
                    .id_path(&inner["id"])
                    .unwrap_or_else(|| str_of(&inner["source"]).to_string());
                let glob = if inner["is_glob"] == true { "::*" } else { "" };
                lines.insert(format!("pub use {path} = {target}{glob}"));
            }
            "union" => {
                let (params, wheres) = self.generics(&inner["generics"]);
                lines.insert(format!("{attrs}pub union {path}{params}{wheres}"));
                self.fields(array(&inner["fields"]), path, lines);
                self.impls(array(&inner["impls"]), lines);
            }
            other => {
                lines.insert(format!("<{other}> {path}"));
            }
        }
    }

    fn structure(&self, inner: &Value, path: &str, attrs: &str, lines: &mut BTreeSet<String>) {
        let (params, wheres) = self.generics(&inner["generics"]);
        let kind = &inner["kind"];
        let shape = if kind == "unit" {
            ";".to_string()
        } else if let Some(fields) = kind.get("tuple") {
            format!("({})", self.tuple_fields(array(fields), true))
        } else if let Some(plain) = kind.get("plain") {
            let fields = array(&plain["fields"]);
            self.fields(fields, path, lines);
            self.braced(
                fields,
                plain["has_stripped_fields"] == true || !attrs.is_empty(),
            )
        } else {
            format!(" <{}>", compact(kind))
        };
        lines.insert(format!("{attrs}pub struct {path}{params}{shape}{wheres}"));
        self.impls(array(&inner["impls"]), lines);
    }

    fn enumeration(&self, inner: &Value, path: &str, attrs: &str, lines: &mut BTreeSet<String>) {
        let (params, wheres) = self.generics(&inner["generics"]);
        let mut names = Vec::new();
        for variant in array(&inner["variants"])
            .iter()
            .filter_map(|id| self.item(id))
        {
            let name = str_of(&variant["name"]);
            names.push(name.to_string());
            self.variant(variant, &format!("{path}::{name}"), lines);
        }
        // A #[non_exhaustive] enum may gain variants; an exhaustive one lists them on its line so
        // that a new one changes the line.
        let shape = if attrs.is_empty() && inner["has_stripped_variants"] != true {
            format!(" {{ {} }}", names.join(", "))
        } else {
            String::new()
        };
        lines.insert(format!("{attrs}pub enum {path}{params}{wheres}{shape}"));
        self.impls(array(&inner["impls"]), lines);
    }

    fn variant(&self, variant: &Value, path: &str, lines: &mut BTreeSet<String>) {
        let attrs = attrs(variant);
        let inner = &variant["inner"]["variant"];
        let kind = &inner["kind"];
        let shape = if kind == "plain" {
            match inner["discriminant"]["expr"].as_str() {
                Some(expr) => format!(" = {expr}"),
                None => String::new(),
            }
        } else if let Some(fields) = kind.get("tuple") {
            format!("({})", self.tuple_fields(array(fields), false))
        } else if let Some(fields) = kind.get("struct") {
            let names = array(&fields["fields"]);
            self.fields(names, path, lines);
            self.braced(
                names,
                fields["has_stripped_fields"] == true || !attrs.is_empty(),
            )
        } else {
            format!(" <{}>", compact(kind))
        };
        lines.insert(format!("{attrs}{path}{shape}"));
    }

    /// ` { a, b }` for a struct a user can build with a literal, ` { .. }` otherwise.
    fn braced(&self, fields: &[Value], closed: bool) -> String {
        if closed {
            return " { .. }".to_string();
        }
        let names: Vec<&str> = fields
            .iter()
            .filter_map(|id| self.item(id))
            .map(|f| str_of(&f["name"]))
            .collect();
        format!(" {{ {} }}", names.join(", "))
    }

    fn fields(&self, fields: &[Value], path: &str, lines: &mut BTreeSet<String>) {
        for field in fields.iter().filter_map(|id| self.item(id)) {
            let visibility = if field["visibility"] == "public" {
                "pub "
            } else {
                ""
            };
            lines.insert(format!(
                "{visibility}{path}::{}: {}",
                str_of(&field["name"]),
                self.ty(&field["inner"]["struct_field"])
            ));
        }
    }

    /// A tuple's fields; `null` is a private field, shown as `_`.
    fn tuple_fields(&self, fields: &[Value], say_pub: bool) -> String {
        let rendered: Vec<String> = fields
            .iter()
            .map(|id| match self.item(id) {
                Some(field) => {
                    let visibility = if say_pub && field["visibility"] == "public" {
                        "pub "
                    } else {
                        ""
                    };
                    format!("{visibility}{}", self.ty(&field["inner"]["struct_field"]))
                }
                None => "_".to_string(),
            })
            .collect();
        rendered.join(", ")
    }

    fn trait_lines(&self, inner: &Value, path: &str, lines: &mut BTreeSet<String>) {
        let (params, wheres) = self.generics(&inner["generics"]);
        let unsafety = if inner["is_unsafe"] == true {
            "unsafe "
        } else {
            ""
        };
        let bounds = self.bounds(array(&inner["bounds"]));
        let supertraits = if bounds.is_empty() {
            String::new()
        } else {
            format!(": {bounds}")
        };
        let dyn_compatible = if inner["is_dyn_compatible"] == true {
            " (dyn-compatible)"
        } else {
            ""
        };
        // The items an implementor must write are listed on the trait's line: a new one breaks
        // every implementation, so it must change the line, not only add one.
        let required: Vec<&str> = array(&inner["items"])
            .iter()
            .filter_map(|id| self.item(id))
            .filter(|item| is_required(&item["inner"]))
            .map(|item| str_of(&item["name"]))
            .collect();
        lines.insert(format!(
            "pub {unsafety}trait {path}{params}{supertraits}{wheres}{dyn_compatible} {{ required: {} }}",
            required.join(", ")
        ));
        for item in array(&inner["items"]).iter().filter_map(|id| self.item(id)) {
            let item_path = format!("{path}::{}", str_of(&item["name"]));
            lines.insert(self.associated(item, &item_path, "", true));
        }
        self.impls(array(&inner["implementations"]), lines);
    }

    /// An item of a trait or an impl: a method, an associated type or constant.
    fn associated(&self, item: &Value, path: &str, visibility: &str, in_trait: bool) -> String {
        let inner = &item["inner"];
        if let Some(function) = inner.get("function") {
            let provided = if in_trait && function["has_body"] == true {
                " (provided)"
            } else {
                ""
            };
            format!("{visibility}{}{provided}", self.function(function, path))
        } else if let Some(assoc) = inner.get("assoc_type") {
            let (params, wheres) = self.generics(&assoc["generics"]);
            let bounds = self.bounds(array(&assoc["bounds"]));
            let bounds = if bounds.is_empty() {
                String::new()
            } else {
                format!(": {bounds}")
            };
            let default = match &assoc["type"] {
                Value::Null => String::new(),
                ty => format!(" = {}", self.ty(ty)),
            };
            format!("{visibility}type {path}{params}{bounds}{wheres}{default}")
        } else if let Some(assoc) = inner.get("assoc_const") {
            format!("{visibility}const {path}: {}", self.ty(&assoc["type"]))
        } else {
            format!(
                "<{}> {path}",
                inner
                    .as_object()
                    .and_then(|o| o.keys().next())
                    .map_or("?", |k| k)
            )
        }
    }

    fn function(&self, function: &Value, path: &str) -> String {
        let header = &function["header"];
        let mut qualifiers = String::new();
        for (flag, word) in [
            ("is_const", "const "),
            ("is_async", "async "),
            ("is_unsafe", "unsafe "),
        ] {
            if header[flag] == true {
                qualifiers.push_str(word);
            }
        }
        if let Some(abi) = header["abi"].as_object().and_then(|o| o.keys().next()) {
            qualifiers.push_str(&format!("extern \"{abi}\" "));
        }
        let (params, wheres) = self.generics(&function["generics"]);
        let sig = &function["sig"];
        let inputs: Vec<String> = array(&sig["inputs"])
            .iter()
            .map(|input| self.input(str_of(&input[0]), &input[1]))
            .collect();
        let output = match &sig["output"] {
            Value::Null => String::new(),
            ty => format!(" -> {}", self.ty(ty)),
        };
        format!(
            "{qualifiers}fn {path}{params}({}){output}{wheres}",
            inputs.join(", ")
        )
    }

    fn input(&self, name: &str, ty: &Value) -> String {
        if name == "self" {
            if ty["generic"] == "Self" {
                return "self".to_string();
            }
            let reference = &ty["borrowed_ref"];
            if reference["type"]["generic"] == "Self" {
                let lifetime = reference["lifetime"].as_str().map(|l| format!("{l} "));
                let mutable = if reference["is_mutable"] == true {
                    "mut "
                } else {
                    ""
                };
                return format!("&{}{mutable}self", lifetime.unwrap_or_default());
            }
        }
        format!("{name}: {}", self.ty(ty))
    }

    fn impls(&self, impls: &[Value], lines: &mut BTreeSet<String>) {
        for item in impls.iter().filter_map(|id| self.item(id)) {
            let inner = &item["inner"]["impl"];
            if inner["blanket_impl"] != Value::Null {
                continue;
            }
            let for_type = self.ty(&inner["for"]);
            let (params, wheres) = self.generics(&inner["generics"]);
            if inner["trait"] == Value::Null {
                // An inherent impl: its public items, named after the type; the impl's bounds
                // (the methods exist only where they hold) follow each one.
                for member in array(&inner["items"]).iter().filter_map(|id| self.item(id)) {
                    if member["visibility"] != "public" {
                        continue;
                    }
                    let path = format!("{for_type}::{}", str_of(&member["name"]));
                    let line = self.associated(member, &path, "pub ", false);
                    let bounds = if wheres.is_empty() && !params.contains(':') {
                        String::new()
                    } else {
                        format!(" (in impl{params}{wheres})")
                    };
                    lines.insert(format!("{line}{bounds}"));
                }
                continue;
            }
            let name = str_of(&inner["trait"]["path"])
                .rsplit("::")
                .next()
                .unwrap_or_default();
            // An auto trait a type lacks is not listed (`impl !Send for ...`): its absence says it,
            // and a type gaining one then shows as an addition, as it should, not as a change.
            let synthetic = inner["is_synthetic"] == true;
            if UNSTABLE_MARKERS.contains(&name)
                || synthetic && (!AUTO_TRAITS.contains(&name) || inner["is_negative"] == true)
            {
                continue;
            }
            let unsafety = if inner["is_unsafe"] == true {
                "unsafe "
            } else {
                ""
            };
            let negative = if inner["is_negative"] == true {
                "!"
            } else {
                ""
            };
            lines.insert(format!(
                "{unsafety}impl{params} {negative}{} for {for_type}{wheres}",
                self.path(&inner["trait"])
            ));
        }
    }

    /// `<T: Bound, 'a>` (impl-Trait arguments left out: they show in the arguments) and
    /// ` where ...`.
    fn generics(&self, generics: &Value) -> (String, String) {
        let params: Vec<String> = array(&generics["params"])
            .iter()
            .filter_map(|p| self.generic_param(p))
            .collect();
        let params = if params.is_empty() {
            String::new()
        } else {
            format!("<{}>", params.join(", "))
        };
        let wheres: Vec<String> = array(&generics["where_predicates"])
            .iter()
            .map(|p| self.where_predicate(p))
            .collect();
        let wheres = if wheres.is_empty() {
            String::new()
        } else {
            format!(" where {}", wheres.join(", "))
        };
        (params, wheres)
    }

    fn generic_param(&self, param: &Value) -> Option<String> {
        let name = str_of(&param["name"]);
        let kind = &param["kind"];
        if let Some(lifetime) = kind.get("lifetime") {
            let outlives: Vec<&str> = array(&lifetime["outlives"]).iter().map(str_of).collect();
            return Some(if outlives.is_empty() {
                name.to_string()
            } else {
                format!("{name}: {}", outlives.join(" + "))
            });
        }
        if let Some(ty) = kind.get("type") {
            if ty["is_synthetic"] == true {
                return None;
            }
            let bounds = self.bounds(array(&ty["bounds"]));
            let bounds = if bounds.is_empty() {
                String::new()
            } else {
                format!(": {bounds}")
            };
            let default = match &ty["default"] {
                Value::Null => String::new(),
                default => format!(" = {}", self.ty(default)),
            };
            return Some(format!("{name}{bounds}{default}"));
        }
        if let Some(constant) = kind.get("const") {
            let default = match constant["default"].as_str() {
                Some(default) => format!(" = {default}"),
                None => String::new(),
            };
            return Some(format!(
                "const {name}: {}{default}",
                self.ty(&constant["type"])
            ));
        }
        Some(format!("<{}> {name}", compact(kind)))
    }

    fn where_predicate(&self, predicate: &Value) -> String {
        if let Some(bound) = predicate.get("bound_predicate") {
            format!(
                "{}{}: {}",
                self.higher_ranked(&bound["generic_params"]),
                self.ty(&bound["type"]),
                self.bounds(array(&bound["bounds"]))
            )
        } else if let Some(lifetime) = predicate.get("lifetime_predicate") {
            let outlives: Vec<&str> = array(&lifetime["outlives"]).iter().map(str_of).collect();
            format!(
                "{}: {}",
                str_of(&lifetime["lifetime"]),
                outlives.join(" + ")
            )
        } else if let Some(eq) = predicate.get("eq_predicate") {
            format!("{} = {}", self.ty(&eq["lhs"]), self.term(&eq["rhs"]))
        } else {
            format!("<{}>", compact(predicate))
        }
    }

    fn higher_ranked(&self, params: &Value) -> String {
        let params: Vec<String> = array(params)
            .iter()
            .filter_map(|p| self.generic_param(p))
            .collect();
        if params.is_empty() {
            String::new()
        } else {
            format!("for<{}> ", params.join(", "))
        }
    }

    fn bounds(&self, bounds: &[Value]) -> String {
        let rendered: Vec<String> = bounds.iter().map(|b| self.bound(b)).collect();
        rendered.join(" + ")
    }

    fn bound(&self, bound: &Value) -> String {
        if let Some(trait_bound) = bound.get("trait_bound") {
            let modifier = match trait_bound["modifier"].as_str() {
                Some("maybe") => "?",
                Some("maybe_const") => "[const] ",
                _ => "",
            };
            format!(
                "{}{modifier}{}",
                self.higher_ranked(&trait_bound["generic_params"]),
                self.path(&trait_bound["trait"])
            )
        } else if let Some(lifetime) = bound.get("outlives").and_then(Value::as_str) {
            lifetime.to_string()
        } else if let Some(captured) = bound.get("use") {
            let names: Vec<String> = array(captured)
                .iter()
                .map(|c| match c {
                    Value::String(name) => name.clone(),
                    Value::Object(o) => o
                        .values()
                        .next()
                        .map(|v| str_of(v).to_string())
                        .unwrap_or_default(),
                    other => compact(other),
                })
                .collect();
            format!("use<{}>", names.join(", "))
        } else {
            format!("<{}>", compact(bound))
        }
    }

    fn term(&self, term: &Value) -> String {
        if let Some(ty) = term.get("type") {
            self.ty(ty)
        } else if let Some(constant) = term.get("constant") {
            str_of(&constant["expr"]).to_string()
        } else {
            format!("<{}>", compact(term))
        }
    }

    fn ty(&self, ty: &Value) -> String {
        if let Some(name) = ty
            .get("generic")
            .or_else(|| ty.get("primitive"))
            .and_then(Value::as_str)
        {
            return name.to_string();
        }
        if let Some(path) = ty.get("resolved_path") {
            return self.path(path);
        }
        if let Some(reference) = ty.get("borrowed_ref") {
            let lifetime = reference["lifetime"].as_str().map(|l| format!("{l} "));
            let mutable = if reference["is_mutable"] == true {
                "mut "
            } else {
                ""
            };
            return format!(
                "&{}{mutable}{}",
                lifetime.unwrap_or_default(),
                self.ty(&reference["type"])
            );
        }
        if let Some(pointer) = ty.get("raw_pointer") {
            let mutable = if pointer["is_mutable"] == true {
                "mut"
            } else {
                "const"
            };
            return format!("*{mutable} {}", self.ty(&pointer["type"]));
        }
        if let Some(elements) = ty.get("tuple") {
            let elements: Vec<String> = array(elements).iter().map(|t| self.ty(t)).collect();
            return match elements.as_slice() {
                [one] => format!("({one},)"),
                _ => format!("({})", elements.join(", ")),
            };
        }
        if let Some(element) = ty.get("slice") {
            return format!("[{}]", self.ty(element));
        }
        if let Some(array) = ty.get("array") {
            return format!("[{}; {}]", self.ty(&array["type"]), str_of(&array["len"]));
        }
        if let Some(bounds) = ty.get("impl_trait") {
            return format!("impl {}", self.bounds(array(bounds)));
        }
        if let Some(dyn_trait) = ty.get("dyn_trait") {
            let mut parts: Vec<String> = array(&dyn_trait["traits"])
                .iter()
                .map(|t| {
                    format!(
                        "{}{}",
                        self.higher_ranked(&t["generic_params"]),
                        self.path(&t["trait"])
                    )
                })
                .collect();
            if let Some(lifetime) = dyn_trait["lifetime"].as_str() {
                parts.push(lifetime.to_string());
            }
            return format!("dyn {}", parts.join(" + "));
        }
        if let Some(pointer) = ty.get("function_pointer") {
            let header = &pointer["header"];
            let unsafety = if header["is_unsafe"] == true {
                "unsafe "
            } else {
                ""
            };
            let sig = &pointer["sig"];
            let inputs: Vec<String> = array(&sig["inputs"])
                .iter()
                .map(|i| self.ty(&i[1]))
                .collect();
            let output = match &sig["output"] {
                Value::Null => String::new(),
                ty => format!(" -> {}", self.ty(ty)),
            };
            return format!(
                "{}{unsafety}fn({}){output}",
                self.higher_ranked(&pointer["generic_params"]),
                inputs.join(", ")
            );
        }
        if let Some(qualified) = ty.get("qualified_path") {
            let self_type = self.ty(&qualified["self_type"]);
            let name = str_of(&qualified["name"]);
            let args = self.generic_args(&qualified["args"]);
            return match &qualified["trait"] {
                Value::Null => format!("{self_type}::{name}{args}"),
                t => format!("<{self_type} as {}>::{name}{args}", self.path(t)),
            };
        }
        if let Some(pattern) = ty.get("pat") {
            return self.ty(&pattern["type"]);
        }
        if ty == "infer" {
            return "_".to_string();
        }
        format!("<{}>", compact(ty))
    }

    /// A path to a type or trait with its generic arguments: this crate's items by their public
    /// path, other crates' by the path rustdoc knows them by.
    fn path(&self, path: &Value) -> String {
        let name = self.id_path(&path["id"]).unwrap_or_else(|| {
            let written = str_of(&path["path"]);
            written
                .trim_start_matches("$crate::")
                .trim_start_matches("crate::")
                .to_string()
        });
        format!("{name}{}", self.generic_args(&path["args"]))
    }

    fn id_path(&self, id: &Value) -> Option<String> {
        let key = id.to_string();
        if let Some(path) = self.public_paths.get(&key) {
            return Some(path.clone());
        }
        let segments: Vec<&str> = array(&self.paths.get(&key)?["path"])
            .iter()
            .map(str_of)
            .collect();
        (!segments.is_empty()).then(|| segments.join("::"))
    }

    fn generic_args(&self, args: &Value) -> String {
        if let Some(angle) = args.get("angle_bracketed") {
            let mut rendered: Vec<String> = array(&angle["args"])
                .iter()
                .map(|arg| {
                    if let Some(lifetime) = arg.get("lifetime").and_then(Value::as_str) {
                        lifetime.to_string()
                    } else if let Some(ty) = arg.get("type") {
                        self.ty(ty)
                    } else if let Some(constant) = arg.get("const") {
                        str_of(&constant["expr"]).to_string()
                    } else if arg == "infer" {
                        "_".to_string()
                    } else {
                        format!("<{}>", compact(arg))
                    }
                })
                .collect();
            for constraint in array(&angle["constraints"]) {
                let name = format!(
                    "{}{}",
                    str_of(&constraint["name"]),
                    self.generic_args(&constraint["args"])
                );
                let binding = &constraint["binding"];
                rendered.push(if let Some(term) = binding.get("equality") {
                    format!("{name} = {}", self.term(term))
                } else if let Some(bounds) = binding.get("constraint") {
                    format!("{name}: {}", self.bounds(array(bounds)))
                } else {
                    format!("{name} <{}>", compact(binding))
                });
            }
            return if rendered.is_empty() {
                String::new()
            } else {
                format!("<{}>", rendered.join(", "))
            };
        }
        if let Some(parenthesized) = args.get("parenthesized") {
            let inputs: Vec<String> = array(&parenthesized["inputs"])
                .iter()
                .map(|t| self.ty(t))
                .collect();
            let output = match &parenthesized["output"] {
                Value::Null => String::new(),
                ty => format!(" -> {}", self.ty(ty)),
            };
            return format!("({}){output}", inputs.join(", "));
        }
        if args == "return_type_notation" {
            return "(..)".to_string();
        }
        if args.is_null() {
            String::new()
        } else {
            format!("<{}>", compact(args))
        }
    }
}

/// Whether an implementor must write this trait item: a method without a body, an associated
/// type or constant without a default.
fn is_required(inner: &Value) -> bool {
    if let Some(function) = inner.get("function") {
        function["has_body"] != true
    } else if let Some(assoc) = inner.get("assoc_type") {
        assoc["type"].is_null()
    } else if let Some(assoc) = inner.get("assoc_const") {
        assoc["value"].is_null()
    } else {
        false
    }
}

/// Keeps the shortest path seen for an item (the alphabetically first among equals), whatever
/// order the modules are walked in.
fn record(found: &mut HashMap<String, String>, key: &str, path: &str) {
    let better = |old: &String| (path.len(), path) < (old.len(), old.as_str());
    if found.get(key).is_none_or(better) {
        found.insert(key.to_string(), path.to_string());
    }
}

/// The attributes that change what a user may do: `#[non_exhaustive]` and `#[repr(...)]`.
fn attrs(item: &Value) -> String {
    let mut out = String::new();
    for attr in array(&item["attrs"]) {
        if attr == "non_exhaustive" {
            out.push_str("#[non_exhaustive] ");
        } else if let Some(repr) = attr.get("repr") {
            // A repr holds no ids: its JSON is stable as it is.
            out.push_str(&format!("#[repr({repr})] "));
        }
    }
    out
}

fn array(value: &Value) -> &[Value] {
    value.as_array().map_or(&[], Vec::as_slice)
}

fn str_of(value: &Value) -> &str {
    value.as_str().unwrap_or("?")
}

/// The name of a JSON shape this file does not know: the kind only, since its content may hold
/// ids, which change from build to build. Such a line is a sign to teach this file the shape.
fn compact(value: &Value) -> String {
    match value {
        Value::Object(object) => object.keys().next().cloned().unwrap_or_default(),
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}
