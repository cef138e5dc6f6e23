//! Reads template.yaml so tests run the binaries with exactly the environment the stack gives
//! them: the template and the code cannot drift apart.

use serde_yaml::Value;
use std::collections::HashMap;

pub struct Template {
    doc: Value,
}

impl Template {
    pub fn load() -> Template {
        let text = std::fs::read_to_string(crate::root().join("template.yaml")).unwrap();
        Template {
            doc: serde_yaml::from_str(&text).expect("template.yaml is YAML"),
        }
    }

    /// The dashboard's body (the text under `!Sub`), as JSON.
    pub fn dashboard_body(&self) -> serde_json::Value {
        let body = self
            .doc
            .get("Resources")
            .and_then(|r| r.get("Dashboard"))
            .and_then(|d| d.get("Properties"))
            .and_then(|p| p.get("DashboardBody"))
            .expect("a Dashboard resource with a DashboardBody");
        let text = match body {
            Value::Tagged(tagged) => tagged.value.as_str().unwrap().to_string(),
            other => other.as_str().unwrap().to_string(),
        };
        serde_json::from_str(&text).expect("the dashboard body is JSON")
    }

    /// Parameter names and their defaults (as text), in template order.
    pub fn parameters(&self) -> Vec<(String, Option<String>)> {
        let Some(Value::Mapping(params)) = self.doc.get("Parameters") else {
            return Vec::new();
        };
        params
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().unwrap().to_string(),
                    v.get("Default").map(scalar),
                )
            })
            .collect()
    }

    /// The function's environment (Globals, then its own), with `!Ref` to a parameter resolved to
    /// `overrides` or the parameter's default, and `!Ref`/`!GetAtt` to a resource resolved
    /// through `resources` (logical id → value). An unresolvable reference panics.
    pub fn function_env(
        &self,
        function: &str,
        resources: &HashMap<&str, String>,
        overrides: &HashMap<&str, String>,
    ) -> Vec<(String, String)> {
        let params: HashMap<String, Option<String>> = self.parameters().into_iter().collect();
        let param = |logical: &str| -> Option<String> {
            overrides
                .get(logical)
                .cloned()
                .or_else(|| params.get(logical).map(|d| d.clone().unwrap_or_default()))
        };
        let resolve =
            |value: &Value| -> String { self.resolve(function, value, &param, resources) };
        let mut env = Vec::new();
        let sources = [
            self.doc.get("Globals").and_then(|g| g.get("Function")),
            self.doc
                .get("Resources")
                .and_then(|r| r.get(function))
                .and_then(|f| f.get("Properties")),
        ];
        for source in sources.into_iter().flatten() {
            if let Some(Value::Mapping(vars)) =
                source.get("Environment").and_then(|e| e.get("Variables"))
            {
                for (k, v) in vars {
                    env.push((k.as_str().unwrap().to_string(), resolve(v)));
                }
            }
        }
        env
    }
}

impl Template {
    fn resolve(
        &self,
        function: &str,
        value: &Value,
        param: &dyn Fn(&str) -> Option<String>,
        resources: &HashMap<&str, String>,
    ) -> String {
        let Value::Tagged(tagged) = value else {
            return scalar(value);
        };
        let tag = tagged.tag.to_string();
        if tag == "!If" {
            let Value::Sequence(parts) = &tagged.value else {
                panic!("{function}: bad !If")
            };
            let chosen = if self.condition(&scalar(&parts[0]), param) {
                &parts[1]
            } else {
                &parts[2]
            };
            return self.resolve(function, chosen, param, resources);
        }
        if tag == "!FindInMap" {
            let Value::Sequence(parts) = &tagged.value else {
                panic!("{function}: bad !FindInMap")
            };
            let keys: Vec<String> = parts
                .iter()
                .map(|p| self.resolve(function, p, param, resources))
                .collect();
            let found = self
                .doc
                .get("Mappings")
                .and_then(|m| m.get(keys[0].as_str()))
                .and_then(|m| m.get(keys[1].as_str()))
                .and_then(|m| m.get(keys[2].as_str()))
                // CloudFormation fails the deployment on a key its mapping lacks.
                .unwrap_or_else(|| panic!("{function}: no mapping entry {keys:?}"));
            return scalar(found);
        }
        let target = scalar(&tagged.value);
        let logical = match tag.as_str() {
            "!Ref" => target.as_str(),
            "!GetAtt" => target.split('.').next().unwrap_or_default(),
            other => panic!("{function}: cannot resolve {other} {target}"),
        };
        param(logical)
            .or_else(|| resources.get(logical).cloned())
            .unwrap_or_else(|| panic!("{function}: no value for {tag} {target}"))
    }

    /// Evaluates a condition made of `!Equals`, `!Not`, `!And`, `!Or`, `!Condition`, `!Contains`
    /// (in rules) and `!Ref` to parameters.
    fn condition(&self, name: &str, param: &dyn Fn(&str) -> Option<String>) -> bool {
        let expr = self
            .doc
            .get("Conditions")
            .and_then(|c| c.get(name))
            .unwrap_or_else(|| panic!("no condition {name}"));
        self.eval(expr, param)
    }

    fn eval(&self, expr: &Value, param: &dyn Fn(&str) -> Option<String>) -> bool {
        let Value::Tagged(tagged) = expr else {
            panic!("not a condition: {expr:?}")
        };
        let tag = tagged.tag.to_string();
        if tag == "!Condition" {
            return self.condition(&scalar(&tagged.value), param);
        }
        let Value::Sequence(args) = &tagged.value else {
            panic!("bad condition {expr:?}")
        };
        let operand = |v: &Value| match v {
            Value::Tagged(t) if t.tag == "!Ref" => param(&scalar(&t.value)).unwrap_or_default(),
            other => scalar(other),
        };
        match tag.as_str() {
            "!Equals" => operand(&args[0]) == operand(&args[1]),
            "!Not" => !self.eval(&args[0], param),
            "!And" => args.iter().all(|a| self.eval(a, param)),
            "!Or" => args.iter().any(|a| self.eval(a, param)),
            "!Contains" => {
                let Value::Sequence(list) = &args[0] else {
                    panic!("bad !Contains {expr:?}")
                };
                let wanted = operand(&args[1]);
                list.iter().any(|v| operand(v) == wanted)
            }
            other => panic!("condition function {other} is not supported here"),
        }
    }
}

/// What CloudFormation would create for one set of parameter values, read from the template
/// with its conditions, mappings and rules evaluated (the raw resources, before the SAM
/// transform).
pub struct Stack<'a> {
    template: &'a Template,
    params: HashMap<String, String>,
    /// Every resource's logical id → `ref:<logical id>`.
    refs: HashMap<&'a str, String>,
}

impl Template {
    /// The stack for these parameter values (the others at their defaults).
    pub fn stack(&self, values: &[(&str, String)]) -> Stack<'_> {
        let mut params: HashMap<String, String> = self
            .parameters()
            .into_iter()
            .map(|(k, d)| (k, d.unwrap_or_default()))
            .collect();
        for (k, v) in values {
            assert!(params.contains_key(*k), "no parameter {k}");
            params.insert(k.to_string(), v.clone());
        }
        let refs = match self.doc.get("Resources") {
            Some(Value::Mapping(resources)) => resources
                .keys()
                .filter_map(|k| k.as_str())
                .map(|k| (k, format!("ref:{k}")))
                .collect(),
            _ => HashMap::new(),
        };
        Stack {
            template: self,
            params,
            refs,
        }
    }

    /// The values a parameter takes at its edges: every allowed value of a list; the minimum
    /// and the maximum of a number; the default of anything else.
    pub fn extremes(&self, name: &str) -> Vec<String> {
        let param = self
            .doc
            .get("Parameters")
            .and_then(|p| p.get(name))
            .unwrap_or_else(|| panic!("no parameter {name}"));
        if let Some(Value::Sequence(allowed)) = param.get("AllowedValues") {
            return allowed.iter().map(scalar).collect();
        }
        let mut values: Vec<String> = ["MinValue", "MaxValue"]
            .iter()
            .filter_map(|k| param.get(*k).map(scalar))
            .collect();
        values.dedup();
        if values.is_empty() {
            values.extend(param.get("Default").map(scalar));
        }
        values
    }
}

impl Stack<'_> {
    /// A parameter's value.
    pub fn param(&self, name: &str) -> &str {
        self.params
            .get(name)
            .unwrap_or_else(|| panic!("no parameter {name}"))
    }

    /// The first of the template's `Rules` whose condition holds and whose assertion fails:
    /// CloudFormation refuses the change set, naming it, before anything is deployed.
    pub fn refused_by(&self) -> Option<String> {
        let param = |n: &str| self.params.get(n).cloned();
        let Some(Value::Mapping(rules)) = self.template.doc.get("Rules") else {
            return None;
        };
        for (name, rule) in rules {
            let applies = rule
                .get("RuleCondition")
                .is_none_or(|c| self.template.eval(c, &param));
            let Some(Value::Sequence(assertions)) = rule.get("Assertions") else {
                panic!("rule {name:?} has no assertions")
            };
            if applies
                && assertions
                    .iter()
                    .any(|a| !self.template.eval(&a["Assert"], &param))
            {
                return Some(scalar(name));
            }
        }
        None
    }

    /// The first parameter whose value its declaration does not allow (CloudFormation refuses
    /// it too).
    pub fn out_of_range(&self) -> Option<String> {
        let Some(Value::Mapping(declared)) = self.template.doc.get("Parameters") else {
            return None;
        };
        for (name, decl) in declared {
            let name = scalar(name);
            let value = self.param(&name);
            if let Some(Value::Sequence(allowed)) = decl.get("AllowedValues") {
                if !allowed.iter().any(|a| scalar(a) == value) {
                    return Some(name);
                }
            }
            let bound = |k: &str| decl.get(k).and_then(|v| scalar(v).parse::<f64>().ok());
            if let Ok(n) = value.parse::<f64>() {
                if bound("MinValue").is_some_and(|min| n < min)
                    || bound("MaxValue").is_some_and(|max| n > max)
                {
                    return Some(name);
                }
            }
        }
        None
    }

    /// Whether the resource is created (its `Condition` holds, or it has none).
    pub fn creates(&self, resource: &str) -> bool {
        let param = |n: &str| self.params.get(n).cloned();
        self.resource(resource)
            .get("Condition")
            .is_none_or(|c| self.template.condition(&scalar(c), &param))
    }

    /// A resource property, by its path under `Properties`, resolved to text. References to
    /// other resources come back as `ref:<logical id>`.
    pub fn property(&self, resource: &str, path: &[&str]) -> String {
        let mut node = self
            .resource(resource)
            .get("Properties")
            .unwrap_or_else(|| panic!("{resource} has no properties"));
        for key in path {
            node = node
                .get(*key)
                .unwrap_or_else(|| panic!("{resource} has no {path:?}"));
        }
        let param = |n: &str| self.params.get(n).cloned();
        self.template.resolve(resource, node, &param, &self.refs)
    }

    /// [`Stack::property`] as a number.
    pub fn number(&self, resource: &str, path: &[&str]) -> u64 {
        let text = self.property(resource, path);
        text.parse()
            .unwrap_or_else(|_| panic!("{resource} {path:?} is {text:?}, not a number"))
    }

    /// The function's environment (Globals, then its own), references to resources as
    /// `ref:<logical id>`.
    pub fn env(&self, function: &str) -> Vec<(String, String)> {
        let param = |n: &str| self.params.get(n).cloned();
        let sources = [
            self.template
                .doc
                .get("Globals")
                .and_then(|g| g.get("Function")),
            self.resource(function).get("Properties"),
        ];
        let mut env = Vec::new();
        for source in sources.into_iter().flatten() {
            if let Some(Value::Mapping(vars)) =
                source.get("Environment").and_then(|e| e.get("Variables"))
            {
                for (k, v) in vars {
                    let value = self.template.resolve(function, v, &param, &self.refs);
                    env.push((scalar(k), value));
                }
            }
        }
        env
    }

    fn resource(&self, name: &str) -> &Value {
        self.template
            .doc
            .get("Resources")
            .and_then(|r| r.get(name))
            .unwrap_or_else(|| panic!("no resource {name}"))
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => String::new(),
        other => panic!("not a scalar: {other:?}"),
    }
}

impl Template {
    /// Every name referenced by `!Ref`, `!GetAtt` or `${…}` in `!Sub` outside `Parameters`.
    pub fn references(&self) -> std::collections::HashSet<String> {
        let mut found = std::collections::HashSet::new();
        if let Value::Mapping(top) = &self.doc {
            for (key, value) in top {
                if key.as_str() != Some("Parameters") {
                    collect(value, &mut found);
                }
            }
        }
        found
    }

    /// A managed policy's statements: (actions, resource) each, the resource as the template
    /// writes it (`LedgerTable.Arn` for `!GetAtt`, the text for `!Sub`).
    pub fn policy_statements(&self, resource: &str) -> Vec<(Vec<String>, String)> {
        let statements = self
            .doc
            .get("Resources")
            .and_then(|r| r.get(resource))
            .and_then(|r| r.get("Properties"))
            .and_then(|p| p.get("PolicyDocument"))
            .and_then(|d| d.get("Statement"))
            .and_then(Value::as_sequence)
            .unwrap_or_else(|| panic!("{resource} has no PolicyDocument statements"));
        statements
            .iter()
            .map(|statement| {
                let actions = match statement.get("Action") {
                    Some(Value::Sequence(list)) => list.iter().map(scalar).collect(),
                    Some(one) => vec![scalar(one)],
                    None => panic!("{resource}: a statement without Action"),
                };
                let resource = match statement.get("Resource") {
                    Some(Value::Tagged(tagged)) => scalar(&tagged.value),
                    Some(other) => scalar(other),
                    None => panic!("{resource}: a statement without Resource"),
                };
                (actions, resource)
            })
            .collect()
    }

    /// The environment variable names a function gets (Globals and its own).
    pub fn env_names(&self, function: &str) -> Vec<String> {
        let mut names = Vec::new();
        let sources = [
            self.doc.get("Globals").and_then(|g| g.get("Function")),
            self.doc
                .get("Resources")
                .and_then(|r| r.get(function))
                .and_then(|f| f.get("Properties")),
        ];
        for source in sources.into_iter().flatten() {
            if let Some(Value::Mapping(vars)) =
                source.get("Environment").and_then(|e| e.get("Variables"))
            {
                names.extend(vars.keys().filter_map(|k| k.as_str().map(str::to_string)));
            }
        }
        names
    }

    /// The parameter's attribute (`Type`, `NoEcho`, …) as text.
    pub fn parameter_attr(&self, name: &str, attr: &str) -> Option<String> {
        self.doc
            .get("Parameters")
            .and_then(|p| p.get(name))
            .and_then(|p| p.get(attr))
            .map(scalar)
    }
}

fn collect(value: &Value, found: &mut std::collections::HashSet<String>) {
    match value {
        Value::Tagged(tagged) => {
            let tag = tagged.tag.to_string();
            match (tag.as_str(), &tagged.value) {
                ("!Ref", Value::String(name)) => {
                    found.insert(name.clone());
                }
                ("!GetAtt", Value::String(name)) => {
                    found.insert(name.split('.').next().unwrap_or_default().to_string());
                }
                ("!Sub", Value::String(text)) => sub_names(text, found),
                _ => {}
            }
            collect(&tagged.value, found);
        }
        Value::Mapping(map) => {
            for (k, v) in map {
                if k.as_str() == Some("Ref") {
                    if let Some(name) = v.as_str() {
                        found.insert(name.to_string());
                    }
                }
                collect(v, found);
            }
        }
        Value::Sequence(items) => items.iter().for_each(|v| collect(v, found)),
        _ => {}
    }
}

fn sub_names(text: &str, found: &mut std::collections::HashSet<String>) {
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else { break };
        let name = &after[..end];
        found.insert(name.split('.').next().unwrap_or_default().to_string());
        rest = &after[end + 1..];
    }
}
