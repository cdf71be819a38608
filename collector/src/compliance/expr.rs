//! Quantity expressions of norm profiles: arithmetic over a school's attributes, e.g.
//! `if(pupils < 250, 15, if(pupils < 1000, 30, 45))` or `ceil(teachers / 20) + buildings`.
//!
//! Grammar: numbers, the names in [`VARIABLES`], `+ - * /`, comparisons `< <= > >= == !=`
//! (1 when true, 0 when false), parentheses, and the functions `if(c, a, b)`, `min(…)`,
//! `max(…)`, `ceil(x)`, `floor(x)`, `round(x)`. Parsed once when the profile loads, so a typo
//! is an error naming the profile, the category and the position, not a wrong report.

use std::fmt;

/// The school attributes an expression may use.
pub const VARIABLES: [&str; 5] = ["pupils", "teachers", "admin_staff", "classrooms", "buildings"];

/// A parsed expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A number.
    Num(f64),
    /// A school attribute, by index into [`VARIABLES`].
    Var(usize),
    /// `-x`.
    Neg(Box<Expr>),
    /// A binary operation.
    Bin(Op, Box<Expr>, Box<Expr>),
    /// A function call.
    Call(Func, Vec<Expr>),
}

/// Binary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `==`
    Eq,
    /// `!=`
    Ne,
}

/// Functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Func {
    /// `if(c, a, b)`
    If,
    /// `min(…)`
    Min,
    /// `max(…)`
    Max,
    /// `ceil(x)`
    Ceil,
    /// `floor(x)`
    Floor,
    /// `round(x)`
    Round,
}

/// Why an expression does not parse: the character position (0-based) and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExprError {
    /// Character position.
    pub at: usize,
    /// Reason.
    pub message: String,
}

impl fmt::Display for ExprError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at character {}: {}", self.at + 1, self.message)
    }
}

/// Longest expression text and deepest nesting accepted.
const MAX_LEN: usize = 2000;
const MAX_DEPTH: usize = 32;

struct Parser {
    chars: Vec<char>,
    pos: usize,
    depth: usize,
}

impl Parser {
    fn err<T>(&self, message: impl Into<String>) -> Result<T, ExprError> {
        Err(ExprError { at: self.pos, message: message.into() })
    }

    fn skip_ws(&mut self) {
        while self.chars.get(self.pos).is_some_and(|c| c.is_whitespace()) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, s: &str) -> bool {
        self.skip_ws();
        let n = s.chars().count();
        if self.chars.get(self.pos..self.pos + n).is_some_and(|w| w.iter().copied().eq(s.chars())) {
            self.pos += n;
            true
        } else {
            false
        }
    }

    fn expr(&mut self) -> Result<Expr, ExprError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return self.err("nested too deeply");
        }
        let left = self.sum()?;
        // Two-character operators first.
        let ops =
            [("<=", Op::Le), (">=", Op::Ge), ("==", Op::Eq), ("!=", Op::Ne), ("<", Op::Lt), (">", Op::Gt)];
        let result = match ops.iter().find(|(s, _)| self.eat(s)) {
            Some((_, op)) => Expr::Bin(*op, Box::new(left), Box::new(self.sum()?)),
            None => left,
        };
        self.depth -= 1;
        Ok(result)
    }

    fn sum(&mut self) -> Result<Expr, ExprError> {
        let mut e = self.product()?;
        loop {
            let op = if self.eat("+") {
                Op::Add
            } else if self.eat("-") {
                Op::Sub
            } else {
                return Ok(e);
            };
            e = Expr::Bin(op, Box::new(e), Box::new(self.product()?));
        }
    }

    fn product(&mut self) -> Result<Expr, ExprError> {
        let mut e = self.unary()?;
        loop {
            let op = if self.eat("*") {
                Op::Mul
            } else if self.eat("/") {
                Op::Div
            } else {
                return Ok(e);
            };
            e = Expr::Bin(op, Box::new(e), Box::new(self.unary()?));
        }
    }

    fn unary(&mut self) -> Result<Expr, ExprError> {
        if self.eat("-") {
            self.depth += 1;
            if self.depth > MAX_DEPTH {
                return self.err("nested too deeply");
            }
            let e = Expr::Neg(Box::new(self.unary()?));
            self.depth -= 1;
            return Ok(e);
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Expr, ExprError> {
        self.skip_ws();
        let start = self.pos;
        match self.chars.get(self.pos).copied() {
            None => self.err("expression ends too early"),
            Some('(') => {
                self.pos += 1;
                let e = self.expr()?;
                if !self.eat(")") {
                    return self.err("expected «)»");
                }
                Ok(e)
            }
            Some(c) if c.is_ascii_digit() || c == '.' => {
                while self.chars.get(self.pos).is_some_and(|c| c.is_ascii_digit() || *c == '.') {
                    self.pos += 1;
                }
                let text: String = self.chars[start..self.pos].iter().collect();
                match text.parse::<f64>() {
                    Ok(n) if n.is_finite() => Ok(Expr::Num(n)),
                    _ => Err(ExprError { at: start, message: format!("not a number: {text}") }),
                }
            }
            Some(c) if c.is_ascii_alphabetic() || c == '_' => {
                while self.chars.get(self.pos).is_some_and(|c| c.is_ascii_alphanumeric() || *c == '_') {
                    self.pos += 1;
                }
                let name: String = self.chars[start..self.pos].iter().collect();
                if self.eat("(") {
                    let func = match name.as_str() {
                        "if" => Func::If,
                        "min" => Func::Min,
                        "max" => Func::Max,
                        "ceil" => Func::Ceil,
                        "floor" => Func::Floor,
                        "round" => Func::Round,
                        _ => {
                            return Err(ExprError {
                                at: start,
                                message: format!(
                                    "unknown function «{name}» (if, min, max, ceil, floor, round)"
                                ),
                            });
                        }
                    };
                    let mut args = Vec::new();
                    if !self.eat(")") {
                        loop {
                            args.push(self.expr()?);
                            if self.eat(")") {
                                break;
                            }
                            if !self.eat(",") {
                                return self.err("expected «,» or «)»");
                            }
                        }
                    }
                    let ok = match func {
                        Func::If => args.len() == 3,
                        Func::Min | Func::Max => !args.is_empty(),
                        Func::Ceil | Func::Floor | Func::Round => args.len() == 1,
                    };
                    if !ok {
                        return Err(ExprError {
                            at: start,
                            message: format!(
                                "{name}() takes {}",
                                match func {
                                    Func::If => "3 arguments",
                                    Func::Min | Func::Max => "at least 1 argument",
                                    _ => "1 argument",
                                }
                            ),
                        });
                    }
                    Ok(Expr::Call(func, args))
                } else {
                    match VARIABLES.iter().position(|v| *v == name) {
                        Some(i) => Ok(Expr::Var(i)),
                        None => Err(ExprError {
                            at: start,
                            message: format!("unknown name «{name}» (known: {})", VARIABLES.join(", ")),
                        }),
                    }
                }
            }
            Some(c) => self.err(format!("unexpected «{c}»")),
        }
    }
}

/// Parses an expression.
pub fn parse(text: &str) -> Result<Expr, ExprError> {
    if text.len() > MAX_LEN {
        return Err(ExprError { at: 0, message: format!("longer than {MAX_LEN} characters") });
    }
    let mut p = Parser { chars: text.chars().collect(), pos: 0, depth: 0 };
    let e = p.expr()?;
    p.skip_ws();
    if p.pos < p.chars.len() {
        return p.err(format!("unexpected «{}»", p.chars[p.pos]));
    }
    Ok(e)
}

impl Expr {
    /// The value for a school's attributes (in [`VARIABLES`] order). Division by zero gives 0.
    pub fn eval(&self, vars: &[f64; 5]) -> f64 {
        let b = |x: bool| if x { 1.0 } else { 0.0 };
        match self {
            Self::Num(n) => *n,
            Self::Var(i) => vars[*i],
            Self::Neg(e) => -e.eval(vars),
            Self::Bin(op, l, r) => {
                let (l, r) = (l.eval(vars), r.eval(vars));
                match op {
                    Op::Add => l + r,
                    Op::Sub => l - r,
                    Op::Mul => l * r,
                    Op::Div => {
                        if r == 0.0 {
                            0.0
                        } else {
                            l / r
                        }
                    }
                    Op::Lt => b(l < r),
                    Op::Le => b(l <= r),
                    Op::Gt => b(l > r),
                    Op::Ge => b(l >= r),
                    Op::Eq => b((l - r).abs() < 1e-9),
                    Op::Ne => b((l - r).abs() >= 1e-9),
                }
            }
            Self::Call(f, args) => {
                let v: Vec<f64> = match f {
                    Func::If => Vec::new(),
                    _ => args.iter().map(|a| a.eval(vars)).collect(),
                };
                match f {
                    Func::If => {
                        if args[0].eval(vars) != 0.0 {
                            args[1].eval(vars)
                        } else {
                            args[2].eval(vars)
                        }
                    }
                    Func::Min => v.iter().copied().fold(f64::INFINITY, f64::min),
                    Func::Max => v.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                    Func::Ceil => v[0].ceil(),
                    Func::Floor => v[0].floor(),
                    Func::Round => v[0].round(),
                }
            }
        }
    }

    /// A quantity: the value rounded up, never below 0.
    pub fn quantity(&self, vars: &[f64; 5]) -> u32 {
        let v = self.eval(vars);
        if v.is_finite() && v > 0.0 {
            // Clamped to u32's range first.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let q = v.ceil().min(f64::from(u32::MAX)) as u32;
            q
        } else {
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHOOL: [f64; 5] = [640.0, 41.0, 6.0, 28.0, 2.0];

    fn q(text: &str) -> u32 {
        parse(text).unwrap().quantity(&SCHOOL)
    }

    #[test]
    fn tiers_arithmetic_and_functions() {
        assert_eq!(q("if(pupils < 250, 15, if(pupils < 1000, 30, 45))"), 30);
        assert_eq!(q("teachers"), 41);
        assert_eq!(q("ceil(teachers / 20) + buildings"), 5);
        assert_eq!(q("teachers / 20"), 3, "quantities round up");
        assert_eq!(q("max(1, classrooms * 0.5) - -1"), 15);
        assert_eq!(q("min(admin_staff, 4)"), 4);
        assert_eq!(q("floor(7.9) + round(0.5) * 2"), 9);
        assert_eq!(q("1 - 5"), 0, "never below 0");
        assert_eq!(q("pupils / 0"), 0);
        assert_eq!(q("(pupils >= 640) + (pupils != 640) + (buildings == 2)"), 2);
    }

    #[test]
    fn mistakes_are_named_with_their_position() {
        let e = |t: &str| parse(t).unwrap_err().to_string();
        assert_eq!(
            e("pupil * 2"),
            "at character 1: unknown name «pupil» (known: pupils, teachers, admin_staff, classrooms, buildings)"
        );
        assert_eq!(e("teachers +"), "at character 11: expression ends too early");
        assert_eq!(e("if(pupils, 1)"), "at character 1: if() takes 3 arguments");
        assert_eq!(
            e("sqrt(4)"),
            "at character 1: unknown function «sqrt» (if, min, max, ceil, floor, round)"
        );
        assert_eq!(e("(1 + 2"), "at character 7: expected «)»");
        assert_eq!(e("1 2"), "at character 3: unexpected «2»");
        assert_eq!(e("1..2"), "at character 1: not a number: 1..2");
        assert!(e(&"(".repeat(100)).contains("nested too deeply"));
        assert!(e(&"-".repeat(100)).contains("nested too deeply"));
    }
}
