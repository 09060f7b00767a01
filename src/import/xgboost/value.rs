//! The document both readers produce: a JSON-like tree in which arrays of numbers are kept
//! as typed vectors (one allocation per array, not one value per element).

/// Deepest nesting of arrays and objects either reader accepts.
pub const MAX_DEPTH: usize = 64;

/// A parsed JSON or UBJSON value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A number with a fraction or exponent (or NaN/Infinity), parsed straight to f32.
    Float(f32),
    /// A string.
    Str(String),
    /// An array of non-numeric or mixed values.
    Array(Vec<Value>),
    /// An array of numbers (or booleans, as 0/1).
    Typed(Typed),
    /// An object, keys in file order.
    Object(Vec<(String, Value)>),
}

/// A homogeneous numeric array.
#[derive(Debug, Clone, PartialEq)]
pub enum Typed {
    /// `U` elements, or JSON booleans.
    U8(Vec<u8>),
    /// `i` elements.
    I8(Vec<i8>),
    /// `I` elements.
    I16(Vec<i16>),
    /// `l` elements.
    I32(Vec<i32>),
    /// `L` elements, or JSON integers.
    I64(Vec<i64>),
    /// `d` elements, or JSON numbers with at least one non-integer.
    F32(Vec<f32>),
    /// `D` elements.
    F64(Vec<f64>),
}

impl Typed {
    fn len(&self) -> usize {
        match self {
            Typed::U8(v) => v.len(),
            Typed::I8(v) => v.len(),
            Typed::I16(v) => v.len(),
            Typed::I32(v) => v.len(),
            Typed::I64(v) => v.len(),
            Typed::F32(v) => v.len(),
            Typed::F64(v) => v.len(),
        }
    }
}

impl Value {
    /// The member `key` of an object (the first, if repeated).
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Object(m) => m.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The array's elements as a sequence, if this is an array.
    pub fn seq(&self) -> Option<Seq<'_>> {
        match self {
            Value::Typed(t) => Some(Seq::Typed(t)),
            Value::Array(v) => Some(Seq::Values(v)),
            _ => None,
        }
    }

    /// A short name of the value's kind, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Array(_) | Value::Typed(_) => "an array",
            Value::Object(_) => "an object",
        }
    }
}

/// An array's elements, typed or not.
#[derive(Debug, Clone, Copy)]
pub enum Seq<'a> {
    /// A typed array.
    Typed(&'a Typed),
    /// An array of values.
    Values(&'a [Value]),
}

impl Seq<'_> {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            Seq::Typed(t) => t.len(),
            Seq::Values(v) => v.len(),
        }
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Element `i` as an integer (booleans are 0/1; numbers with a fraction are not
    /// integers).
    pub fn int(&self, i: usize) -> Option<i64> {
        match self {
            Seq::Typed(Typed::U8(v)) => v.get(i).map(|&x| x as i64),
            Seq::Typed(Typed::I8(v)) => v.get(i).map(|&x| x as i64),
            Seq::Typed(Typed::I16(v)) => v.get(i).map(|&x| x as i64),
            Seq::Typed(Typed::I32(v)) => v.get(i).map(|&x| x as i64),
            Seq::Typed(Typed::I64(v)) => v.get(i).copied(),
            Seq::Typed(Typed::F32(_) | Typed::F64(_)) => None,
            Seq::Values(v) => match v.get(i)? {
                Value::Int(x) => Some(*x),
                Value::Bool(b) => Some(*b as i64),
                _ => None,
            },
        }
    }

    /// Element `i` as an f32 (integers are converted, rounding to nearest, as XGBoost's
    /// reader does).
    pub fn float(&self, i: usize) -> Option<f32> {
        match self {
            Seq::Typed(Typed::F32(v)) => v.get(i).copied(),
            Seq::Typed(Typed::F64(v)) => v.get(i).map(|&x| x as f32),
            Seq::Values(v) => match v.get(i)? {
                Value::Float(x) => Some(*x),
                Value::Int(x) => Some(*x as f32),
                _ => None,
            },
            _ => self.int(i).map(|x| x as f32),
        }
    }

    /// Element `i` as a value, if the array holds values.
    pub fn value(&self, i: usize) -> Option<&Value> {
        match self {
            Seq::Values(v) => v.get(i),
            Seq::Typed(_) => None,
        }
    }
}

/// Collects an array's elements, keeping numbers in a typed vector while they allow it.
#[derive(Debug, Default)]
pub struct ArrayBuilder {
    state: State,
}

#[derive(Debug, Default)]
enum State {
    #[default]
    Empty,
    Ints(Vec<i64>),
    Floats(Vec<f32>),
    Bools(Vec<u8>),
    Values(Vec<Value>),
}

impl ArrayBuilder {
    /// Adds one element.
    pub fn push(&mut self, v: Value) {
        let state = std::mem::take(&mut self.state);
        self.state = match (state, v) {
            (State::Empty, Value::Int(x)) => State::Ints(vec![x]),
            (State::Empty, Value::Float(x)) => State::Floats(vec![x]),
            (State::Empty, Value::Bool(b)) => State::Bools(vec![b as u8]),
            (State::Empty, v) => State::Values(vec![v]),
            (State::Ints(mut a), Value::Int(x)) => {
                a.push(x);
                State::Ints(a)
            }
            (State::Ints(a), Value::Float(x)) => {
                let mut f: Vec<f32> = a.into_iter().map(|i| i as f32).collect();
                f.push(x);
                State::Floats(f)
            }
            (State::Floats(mut a), Value::Float(x)) => {
                a.push(x);
                State::Floats(a)
            }
            (State::Floats(mut a), Value::Int(x)) => {
                a.push(x as f32);
                State::Floats(a)
            }
            (State::Bools(mut a), Value::Bool(b)) => {
                a.push(b as u8);
                State::Bools(a)
            }
            (State::Values(mut a), v) => {
                a.push(v);
                State::Values(a)
            }
            (other, v) => {
                let mut a = match other {
                    State::Ints(a) => a.into_iter().map(Value::Int).collect(),
                    State::Floats(a) => a.into_iter().map(Value::Float).collect(),
                    State::Bools(a) => a.into_iter().map(|b| Value::Bool(b != 0)).collect(),
                    State::Empty | State::Values(_) => Vec::new(),
                };
                a.push(v);
                State::Values(a)
            }
        };
    }

    /// The finished array.
    pub fn finish(self) -> Value {
        match self.state {
            State::Empty => Value::Array(Vec::new()),
            State::Ints(a) => Value::Typed(Typed::I64(a)),
            State::Floats(a) => Value::Typed(Typed::F32(a)),
            State::Bools(a) => Value::Typed(Typed::U8(a)),
            State::Values(a) => Value::Array(a),
        }
    }
}
