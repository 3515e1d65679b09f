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
            let f = self.finding(offset, |line| format!("Line {line}: {what} '{module}' is not allowed"));
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
                    let module = import.module.as_ref().map(|m| m.as_str()).unwrap_or("").to_string();
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
            let all = node.posonlyargs.into_iter().chain(node.args).chain(node.kwonlyargs);
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
