//! Save-time checks of workflow code (workflows.md §3), behind one function so the parser crate
//! (rustpython-parser) never leaks into the rest of the code base.
//!
//! These rules are a courtesy to authors, not a security boundary: the sandbox is the boundary
//! (`crate::sandbox`). Messages match Calseta's, except that the builtin-call rule prints the
//! line number where Calseta printed the column offset (a quirk we do not reproduce).

use rustpython_ast::{self as ast, Ranged, Visitor};
use rustpython_parser::Parse;

/// Top-level modules workflow code may import (Calseta's exact list).
pub const ALLOWED_IMPORTS: &[&str] = &[
    "asyncio",
    "base64",
    "collections",
    "copy",
    "datetime",
    "enum",
    "functools",
    "hashlib",
    "hmac",
    "html",
    "http",
    "inspect",
    "ipaddress",
    "itertools",
    "json",
    "logging",
    "math",
    "operator",
    "re",
    "statistics",
    "string",
    "textwrap",
    "time",
    "typing",
    "typing_extensions",
    "unicodedata",
    "urllib",
    "uuid",
    "calseta",
];

/// Top-level modules rejected with "is not allowed" (Calseta's exact list).
pub const BLOCKED_IMPORTS: &[&str] = &[
    "os",
    "subprocess",
    "importlib",
    "sys",
    "builtins",
    "socket",
    "ctypes",
    "pickle",
    "pathlib",
    "io",
    "shelve",
    "shutil",
    "tempfile",
    "pty",
    "termios",
    "resource",
    "signal",
    "multiprocessing",
    "concurrent",
    "threading",
    "gc",
    "weakref",
    "code",
    "codeop",
    "compileall",
    "dis",
    "tokenize",
    "token",
];

/// Builtins whose direct call by bare name is rejected.
pub const BLOCKED_BUILTINS: &[&str] = &[
    "exec",
    "eval",
    "compile",
    "__import__",
    "open",
    "breakpoint",
    "input",
    "memoryview",
];

/// Checks workflow source text; an empty list means the code is acceptable.
///
/// Order as Calseta: the `run` check, then import errors in `ast.walk` (breadth-first) order,
/// then builtin-call errors in the same order. A syntax error is the only error when present.
pub fn validate_code(code: &str) -> Vec<String> {
    let lines = LineIndex::new(code);
    let suite = match ast::Suite::parse(code, "<workflow>") {
        Ok(suite) => suite,
        Err(err) => {
            let line = lines.line_of(err.offset.to_usize());
            return vec![format!("Syntax error: {} (line {line})", err.error)];
        }
    };
    let mut errors = Vec::new();
    let has_async_run = suite
        .iter()
        .any(|stmt| matches!(stmt, ast::Stmt::AsyncFunctionDef(def) if def.name.as_str() == "run"));
    if !has_async_run {
        errors.push("Workflow code must define an async function named 'run'".to_string());
    }
    let mut walker = Walker {
        lines: &lines,
        depth: 0,
        seq: 0,
        imports: Vec::new(),
        calls: Vec::new(),
    };
    for stmt in suite {
        walker.visit_stmt(stmt);
    }
    // Sorting a pre-order walk by (depth, pre-order index) yields exactly breadth-first order.
    walker.imports.sort_by_key(|f| (f.depth, f.seq));
    walker.calls.sort_by_key(|f| (f.depth, f.seq));
    errors.extend(walker.imports.into_iter().map(|f| f.message));
    errors.extend(walker.calls.into_iter().map(|f| f.message));
    errors
}

fn top_level(module: &str) -> &str {
    module.split('.').next().unwrap_or(module)
}

fn is_allowed_module(module: &str) -> bool {
    ALLOWED_IMPORTS.contains(&top_level(module))
        || module == "app.workflows"
        || module.starts_with("app.workflows.")
}

/// Byte offset → 1-based line number.
struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    fn new(code: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(code.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { starts }
    }

    fn line_of(&self, offset: usize) -> usize {
        match self.starts.binary_search(&offset) {
            Ok(i) => i + 1,
            Err(i) => i,
        }
    }
}

struct Finding {
    depth: usize,
    seq: usize,
    message: String,
}

/// Pre-order walk that records each finding with its depth, so that the final order can be
/// Python's breadth-first `ast.walk` order. The generated visitor does not descend into
/// arguments, keywords, comprehensions, with-items or match cases: those are done here.
struct Walker<'a> {
    lines: &'a LineIndex,
    depth: usize,
    seq: usize,
    imports: Vec<Finding>,
    calls: Vec<Finding>,
}

impl Walker<'_> {
    fn finding(&mut self, offset: usize, message: impl FnOnce(usize) -> String) -> Finding {
        self.seq += 1;
        Finding {
            depth: self.depth,
            seq: self.seq,
            message: message(self.lines.line_of(offset)),
        }
    }

    fn nested(&mut self, f: impl FnOnce(&mut Self)) {
        self.depth += 1;
        self.seq += 1;
        f(self);
        self.depth -= 1;
    }

    fn check_import(&mut self, offset: usize, module: &str, from: bool) {
        let what = if from { "import from" } else { "import of" };
        if BLOCKED_IMPORTS.contains(&top_level(module)) {
            let f = self.finding(offset, |line| {
                format!("Line {line}: {what} '{module}' is not allowed")
            });
            self.imports.push(f);
        } else if !is_allowed_module(module) {
            let f = self.finding(offset, |line| {
                format!("Line {line}: {what} '{module}' is not in the allowed imports list")
            });
            self.imports.push(f);
        }
    }
}

impl Visitor for Walker<'_> {
    fn visit_stmt(&mut self, node: ast::Stmt) {
        self.nested(|w| {
            let offset = node.range().start().to_usize();
            match &node {
                ast::Stmt::Import(import) => {
                    for alias in &import.names {
                        w.check_import(offset, alias.name.as_str(), false);
                    }
                }
                ast::Stmt::ImportFrom(import) => {
                    // `from . import x` has no module name: Calseta then checks "" (rejected as
                    // not allowed). `from .x import y` is checked as `x`, as in Python's AST.
                    let module = import
                        .module
                        .as_ref()
                        .map(|m| m.as_str())
                        .unwrap_or("")
                        .to_string();
                    w.check_import(offset, &module, true);
                }
                _ => {}
            }
            w.generic_visit_stmt(node);
        });
    }

    fn visit_expr(&mut self, node: ast::Expr) {
        self.nested(|w| {
            if let ast::Expr::Call(call) = &node
                && let ast::Expr::Name(name) = call.func.as_ref()
                && BLOCKED_BUILTINS.contains(&name.id.as_str())
            {
                let id = name.id.as_str().to_string();
                let f = w.finding(call.range.start().to_usize(), |line| {
                    format!("Line {line}: use of '{id}' is not allowed")
                });
                w.calls.push(f);
            }
            w.generic_visit_expr(node);
        });
    }

    fn visit_excepthandler(&mut self, node: ast::ExceptHandler) {
        self.nested(|w| w.generic_visit_excepthandler(node));
    }

    fn visit_arguments(&mut self, node: ast::Arguments) {
        self.nested(|w| {
            let all = node
                .posonlyargs
                .into_iter()
                .chain(node.args)
                .chain(node.kwonlyargs);
            let mut defaults = Vec::new();
            for arg in all {
                if let Some(default) = arg.default {
                    defaults.push(*default);
                }
                w.visit_arg(arg.def);
            }
            if let Some(arg) = node.vararg {
                w.visit_arg(*arg);
            }
            if let Some(arg) = node.kwarg {
                w.visit_arg(*arg);
            }
            for default in defaults {
                w.visit_expr(default);
            }
        });
    }

    fn visit_arg(&mut self, node: ast::Arg) {
        self.nested(|w| {
            if let Some(annotation) = node.annotation {
                w.visit_expr(*annotation);
            }
        });
    }

    fn visit_keyword(&mut self, node: ast::Keyword) {
        self.nested(|w| w.visit_expr(node.value));
    }

    fn visit_comprehension(&mut self, node: ast::Comprehension) {
        self.nested(|w| {
            w.visit_expr(node.target);
            w.visit_expr(node.iter);
            for cond in node.ifs {
                w.visit_expr(cond);
            }
        });
    }

    fn visit_withitem(&mut self, node: ast::WithItem) {
        self.nested(|w| {
            w.visit_expr(node.context_expr);
            if let Some(vars) = node.optional_vars {
                w.visit_expr(*vars);
            }
        });
    }

    fn visit_match_case(&mut self, node: ast::MatchCase) {
        self.nested(|w| {
            w.visit_pattern(node.pattern);
            if let Some(guard) = node.guard {
                w.visit_expr(*guard);
            }
            for stmt in node.body {
                w.visit_stmt(stmt);
            }
        });
    }

    fn visit_pattern(&mut self, node: ast::Pattern) {
        self.nested(|w| w.generic_visit_pattern(node));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RUN: &str = "async def run(ctx):\n    pass\n";

    fn errors(body: &str) -> Vec<String> {
        validate_code(&format!("{body}\n{RUN}"))
    }

    #[test]
    fn valid_workflow_has_no_errors() {
        let code = "from app.workflows.context import WorkflowContext, WorkflowResult\n\
                    import json, re\nimport urllib.parse\nfrom calseta.workflows import WorkflowResult as R\n\
                    class Helper:\n    pass\n\
                    async def run(ctx: WorkflowContext) -> WorkflowResult:\n    \
                    return WorkflowResult.ok(f\"{ctx.indicator.value=}\")\n";
        assert_eq!(validate_code(code), Vec::<String>::new());
    }

    #[test]
    fn syntax_error_is_the_only_error_and_names_the_line() {
        let errs = validate_code("import os\n\nasync def run(ctx)\n    pass\n");
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(errs[0].starts_with("Syntax error: "), "{errs:?}");
        assert!(errs[0].ends_with("(line 3)"), "{errs:?}");
    }

    #[test]
    fn run_must_be_a_top_level_async_def() {
        let msg = "Workflow code must define an async function named 'run'";
        assert_eq!(validate_code("def run(ctx):\n    pass\n"), vec![msg]);
        assert_eq!(
            validate_code("class A:\n    async def run(self, ctx):\n        pass\n"),
            vec![msg]
        );
        assert_eq!(
            validate_code("async def main(ctx):\n    async def run():\n        pass\n"),
            vec![msg]
        );
        assert_eq!(validate_code(""), vec![msg]);
        assert_eq!(validate_code(RUN), Vec::<String>::new());
    }

    #[test]
    fn blocked_imports_are_not_allowed() {
        assert_eq!(
            errors("import os"),
            vec!["Line 1: import of 'os' is not allowed"]
        );
        assert_eq!(
            errors("import os.path"),
            vec!["Line 1: import of 'os.path' is not allowed"]
        );
        assert_eq!(
            errors("\nfrom subprocess import run as r"),
            vec!["Line 2: import from 'subprocess' is not allowed"]
        );
        assert_eq!(
            errors("import io"),
            vec!["Line 1: import of 'io' is not allowed"],
            "io is blocked"
        );
        for name in BLOCKED_IMPORTS {
            assert_eq!(
                errors(&format!("import {name}")),
                vec![format!("Line 1: import of '{name}' is not allowed")]
            );
        }
    }

    #[test]
    fn other_imports_must_be_on_the_allowed_list() {
        assert_eq!(
            errors("import requests"),
            vec!["Line 1: import of 'requests' is not in the allowed imports list"]
        );
        assert_eq!(
            errors("from app.models import Alert"),
            vec!["Line 1: import from 'app.models' is not in the allowed imports list"]
        );
        assert_eq!(
            errors("import app"),
            vec!["Line 1: import of 'app' is not in the allowed imports list"]
        );
        assert_eq!(
            errors("from . import sibling"),
            vec!["Line 1: import from '' is not in the allowed imports list"]
        );
        assert_eq!(
            errors("from app.workflows import context"),
            Vec::<String>::new()
        );
        assert_eq!(
            errors("import app.workflows.context.x"),
            Vec::<String>::new()
        );
        for name in ALLOWED_IMPORTS {
            assert_eq!(
                errors(&format!("import {name}")),
                Vec::<String>::new(),
                "{name}"
            );
        }
    }

    #[test]
    fn one_error_per_offending_alias() {
        assert_eq!(
            errors("import json, os, requests"),
            vec![
                "Line 1: import of 'os' is not allowed",
                "Line 1: import of 'requests' is not in the allowed imports list",
            ]
        );
    }

    #[test]
    fn imports_anywhere_in_the_tree_are_checked_in_breadth_first_order() {
        let code = "async def run(ctx):\n    if True:\n        import pickle\n    import sys\n\
                    import os\n";
        // ast.walk is breadth-first: `import os` (depth 1) before `import sys` (depth 2)
        // before `import pickle` (depth 3).
        assert_eq!(
            validate_code(code),
            vec![
                "Line 5: import of 'os' is not allowed",
                "Line 4: import of 'sys' is not allowed",
                "Line 3: import of 'pickle' is not allowed",
            ]
        );
        let code = "try:\n    pass\nexcept Exception:\n    import shutil\n\
                    with x as y:\n    import pty\nmatch v:\n    case 1:\n        import gc\n";
        assert_eq!(
            errors(code),
            vec![
                "Line 6: import of 'pty' is not allowed",
                "Line 4: import of 'shutil' is not allowed",
                "Line 9: import of 'gc' is not allowed",
            ]
        );
    }

    #[test]
    fn bare_builtin_calls_report_the_line_not_the_column() {
        assert_eq!(
            errors("\n\nx = 1 + eval('2')"),
            vec!["Line 3: use of 'eval' is not allowed"]
        );
        for name in BLOCKED_BUILTINS {
            assert_eq!(
                errors(&format!("{name}('x')")),
                vec![format!("Line 1: use of '{name}' is not allowed")]
            );
        }
    }

    #[test]
    fn builtin_calls_are_found_in_every_nested_position() {
        let places = [
            "f(key=exec('1'))",
            "[exec(i) for i in y]",
            "[i for i in exec(y)]",
            "{i: 1 for i in y if exec(i)}",
            "def f(a=exec('1')):\n    pass",
            "def f(a: exec('1')):\n    pass",
            "def f(*, a=exec('1')):\n    pass",
            "with exec('1'):\n    pass",
            "match v:\n    case 1 if exec('1'):\n        pass",
            "try:\n    pass\nexcept exec('1'):\n    pass",
            "lambda: exec('1')",
            "@exec('1')\ndef f():\n    pass",
            "async def g():\n    await exec('1')",
            "f'{exec(1)}'",
        ];
        for place in places {
            let errs = errors(place);
            assert_eq!(errs.len(), 1, "{place}: {errs:?}");
            assert!(
                errs[0].ends_with("use of 'exec' is not allowed"),
                "{place}: {errs:?}"
            );
        }
    }

    #[test]
    fn attribute_calls_and_references_are_not_detected_as_calseta() {
        assert_eq!(
            errors("import builtins as b\nb.open('x')").len(),
            1,
            "only the import"
        );
        assert_eq!(errors("x = open"), Vec::<String>::new());
        assert_eq!(errors("obj.eval('1')"), Vec::<String>::new());
    }

    #[test]
    fn error_order_is_run_then_imports_then_builtins() {
        let code = "eval('1')\nimport os\n";
        assert_eq!(
            validate_code(code),
            vec![
                "Workflow code must define an async function named 'run'",
                "Line 2: import of 'os' is not allowed",
                "Line 1: use of 'eval' is not allowed",
            ]
        );
    }

    #[test]
    fn parses_python_311_syntax() {
        let code = "async def run(ctx):\n    x = 1\n    s = f'{x=} {x!r:>10}'\n    \
                    match x:\n        case {'a': 1} | [1, *_]:\n            pass\n    \
                    try:\n        pass\n    except* ValueError:\n        pass\n    \
                    with (open_a() as a, open_b() as b):\n        pass\n";
        assert_eq!(validate_code(code), Vec::<String>::new());
    }

    #[test]
    fn line_index_maps_offsets() {
        let idx = LineIndex::new("ab\ncd\n\nef");
        assert_eq!(idx.line_of(0), 1);
        assert_eq!(idx.line_of(2), 1);
        assert_eq!(idx.line_of(3), 2);
        assert_eq!(idx.line_of(6), 3);
        assert_eq!(idx.line_of(7), 4);
    }
}
