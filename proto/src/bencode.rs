//! Bencode (BEP 3): a strict decoder that keeps each dictionary's raw bytes (the info hash is the SHA-1
//! of the `info` dictionary exactly as it was sent), and a small encoder for building torrents.

use std::collections::BTreeMap;
use std::fmt;

/// Nesting deeper than this is refused (a torrent needs 4 levels; this stops stack exhaustion).
const MAX_DEPTH: usize = 64;
/// More values than this are refused: each costs ~48 bytes decoded, so a 10 MiB body of tiny values
/// would otherwise take hundreds of MB on a 512 MiB board. A torrent of 50,000 files needs ~300,000.
const MAX_VALUES: usize = 500_000;

/// A decoded value borrowing from the input.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    Int(i64),
    Bytes(&'a [u8]),
    List(Vec<Value<'a>>),
    /// Entries in input order, and the dictionary's raw encoding.
    Dict(Vec<(&'a [u8], Value<'a>)>, &'a [u8]),
}

impl<'a> Value<'a> {
    /// The value of `key` if this is a dictionary holding it.
    pub fn get(&self, key: &str) -> Option<&Value<'a>> {
        match self {
            Value::Dict(entries, _) => entries.iter().find(|(k, _)| *k == key.as_bytes()).map(|(_, v)| v),
            _ => None,
        }
    }
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }
    pub fn as_bytes(&self) -> Option<&'a [u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }
    pub fn as_list(&self) -> Option<&[Value<'a>]> {
        match self {
            Value::List(l) => Some(l),
            _ => None,
        }
    }
    /// The raw encoding of a dictionary.
    pub fn raw_dict(&self) -> Option<&'a [u8]> {
        match self {
            Value::Dict(_, raw) => Some(raw),
            _ => None,
        }
    }
}

/// Where and why decoding stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    pub offset: usize,
    pub reason: &'static str,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad bencode at byte {}: {}", self.offset, self.reason)
    }
}

impl std::error::Error for DecodeError {}

/// Decodes exactly one value that spans the whole input.
pub fn decode(input: &[u8]) -> Result<Value<'_>, DecodeError> {
    decode_with(input, true)
}

/// Like [`decode`], but a dictionary's keys may come in any order (still never twice): for answers
/// from peers that do not sort them, such as opentracker's scrape of several hashes, which lists
/// them in the order they were asked. Never for metainfo, whose info hash depends on the order.
pub fn decode_unsorted(input: &[u8]) -> Result<Value<'_>, DecodeError> {
    decode_with(input, false)
}

fn decode_with(input: &[u8], sorted: bool) -> Result<Value<'_>, DecodeError> {
    let mut d = Decoder { input, pos: 0, values: 0, sorted };
    let v = d.value(0)?;
    if d.pos != input.len() {
        return Err(d.err("trailing data after the value"));
    }
    Ok(v)
}

struct Decoder<'a> {
    input: &'a [u8],
    pos: usize,
    values: usize,
    /// Keys must be in ascending order.
    sorted: bool,
}

impl<'a> Decoder<'a> {
    fn err(&self, reason: &'static str) -> DecodeError {
        DecodeError { offset: self.pos, reason }
    }

    fn peek(&self) -> Result<u8, DecodeError> {
        self.input.get(self.pos).copied().ok_or_else(|| self.err("unexpected end of input"))
    }

    fn value(&mut self, depth: usize) -> Result<Value<'a>, DecodeError> {
        if depth > MAX_DEPTH {
            return Err(self.err("nested too deeply"));
        }
        self.values += 1;
        if self.values > MAX_VALUES {
            return Err(self.err("too many values"));
        }
        match self.peek()? {
            b'i' => {
                self.pos += 1;
                let n = self.integer(b'e')?;
                Ok(Value::Int(n))
            }
            b'l' => {
                self.pos += 1;
                let mut items = Vec::new();
                while self.peek()? != b'e' {
                    items.push(self.value(depth + 1)?);
                }
                self.pos += 1;
                Ok(Value::List(items))
            }
            b'd' => {
                let start = self.pos;
                self.pos += 1;
                let mut entries: Vec<(&'a [u8], Value<'a>)> = Vec::new();
                while self.peek()? != b'e' {
                    if !self.peek()?.is_ascii_digit() {
                        return Err(self.err("dictionary key is not a byte string"));
                    }
                    let key = self.bytes()?;
                    // BEP 3: keys sorted as raw bytes. Transmission re-encodes a torrent's info
                    // dictionary sorted before hashing it, so an unsorted one would get another
                    // info hash there than here. Strictly ascending also rules out duplicates.
                    if self.sorted && entries.last().is_some_and(|(last, _)| *last >= key) {
                        return Err(self.err("dictionary keys not in ascending order (or repeated)"));
                    }
                    let v = self.value(depth + 1)?;
                    entries.push((key, v));
                }
                if !self.sorted {
                    let mut keys: Vec<&[u8]> = entries.iter().map(|(k, _)| *k).collect();
                    keys.sort_unstable();
                    if keys.windows(2).any(|w| w[0] == w[1]) {
                        return Err(self.err("dictionary key repeated"));
                    }
                }
                self.pos += 1;
                Ok(Value::Dict(entries, &self.input[start..self.pos]))
            }
            b'0'..=b'9' => Ok(Value::Bytes(self.bytes()?)),
            _ => Err(self.err("expected i, l, d or a digit")),
        }
    }

    /// Digits (with an optional '-') up to `end`; no leading zeros, no "-0".
    fn integer(&mut self, end: u8) -> Result<i64, DecodeError> {
        let start = self.pos;
        let stop = self.input[start..]
            .iter()
            .position(|&c| c == end)
            .map(|i| start + i)
            .ok_or(DecodeError { offset: self.input.len(), reason: "unexpected end of input" })?;
        let text = &self.input[start..stop];
        let digits = text.strip_prefix(b"-").unwrap_or(text);
        let leading_zero = digits.len() > 1 && digits[0] == b'0';
        let negative_zero = digits == b"0" && text.len() == 2;
        let well_formed =
            !digits.is_empty() && digits.iter().all(u8::is_ascii_digit) && !leading_zero && !negative_zero;
        if !well_formed {
            return Err(self.err("malformed integer"));
        }
        let n = std::str::from_utf8(text)
            .ok()
            .and_then(|s| s.parse::<i64>().ok())
            .ok_or_else(|| self.err("integer out of range"))?;
        self.pos = stop + 1;
        Ok(n)
    }

    fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = self.integer(b':')?;
        let len = usize::try_from(len).map_err(|_| self.err("negative string length"))?;
        let end = self.pos.checked_add(len).filter(|&e| e <= self.input.len());
        let end = end.ok_or_else(|| self.err("string runs past the end of input"))?;
        let b = &self.input[self.pos..end];
        self.pos = end;
        Ok(b)
    }
}

/// An owned value to encode (dictionary keys come out sorted, as BEP 3 requires).
#[derive(Debug, Clone, PartialEq)]
pub enum Owned {
    Int(i64),
    Bytes(Vec<u8>),
    List(Vec<Owned>),
    Dict(BTreeMap<Vec<u8>, Owned>),
}

impl Owned {
    /// A dictionary from `(key, value)` pairs.
    pub fn dict<const N: usize>(pairs: [(&str, Owned); N]) -> Owned {
        Owned::Dict(pairs.into_iter().map(|(k, v)| (k.as_bytes().to_vec(), v)).collect())
    }
    pub fn str(s: &str) -> Owned {
        Owned::Bytes(s.as_bytes().to_vec())
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }

    fn encode_into(&self, out: &mut Vec<u8>) {
        match self {
            Owned::Int(i) => out.extend_from_slice(format!("i{i}e").as_bytes()),
            Owned::Bytes(b) => {
                out.extend_from_slice(format!("{}:", b.len()).as_bytes());
                out.extend_from_slice(b);
            }
            Owned::List(l) => {
                out.push(b'l');
                l.iter().for_each(|v| v.encode_into(out));
                out.push(b'e');
            }
            Owned::Dict(d) => {
                out.push(b'd');
                for (k, v) in d {
                    Owned::Bytes(k.clone()).encode_into(out);
                    v.encode_into(out);
                }
                out.push(b'e');
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_nested_values_and_keeps_raw_dicts() {
        let input = b"d4:infod4:name1:ae4:listl1:xi0ee3:numi-42ee";
        let v = decode(input).unwrap();
        assert_eq!(v.get("info").unwrap().raw_dict().unwrap(), b"d4:name1:ae");
        assert_eq!(v.get("num").unwrap().as_int(), Some(-42));
        assert_eq!(v.get("list").unwrap().as_list().unwrap().len(), 2);
    }

    #[test]
    fn refuses_malformed_input_without_panicking() {
        let cases: &[&[u8]] = &[
            b"",
            b"i",
            b"i-0e",
            b"i03e",
            b"ie",
            b"i1",
            b"5:abc",
            b"d",
            b"l",
            b"di1e1:ae",
            b"d1:a",
            b"1:ab",
            b"x",
            b"-1:a",
            b"99999999999999999999:a",
            b"i99999999999999999999e",
            b"d1:ai1e1:ai2ee",
        ];
        for c in cases {
            assert!(decode(c).is_err(), "{:?} accepted", String::from_utf8_lossy(c));
        }
        let deep = [vec![b'l'; 100], vec![b'e'; 100]].concat();
        assert_eq!(decode(&deep).unwrap_err().reason, "nested too deeply");
        let many = [&b"l"[..], &b"le".repeat(MAX_VALUES), b"e"].concat();
        assert_eq!(decode(&many).unwrap_err().reason, "too many values");
    }

    #[test]
    fn unsorted_keys_only_where_asked_for_and_never_twice() {
        let unsorted = b"d1:bi1e1:ai2ee";
        assert!(decode(unsorted).is_err());
        let v = decode_unsorted(unsorted).unwrap();
        assert_eq!((v.get("a").unwrap().as_int(), v.get("b").unwrap().as_int()), (Some(2), Some(1)));
        assert_eq!(decode_unsorted(b"d1:bi1e1:ai2e1:bi3ee").unwrap_err().reason, "dictionary key repeated");
        assert_eq!(decode_unsorted(b"d1:ai1e1:ai2ee").unwrap_err().reason, "dictionary key repeated");
        assert!(decode_unsorted(b"d1:ai1e").is_err());
    }

    #[test]
    fn encodes_with_sorted_keys_and_round_trips() {
        let v = Owned::dict([("z", Owned::Int(1)), ("a", Owned::List(vec![Owned::str("x")]))]);
        let bytes = v.encode();
        assert_eq!(bytes, b"d1:al1:xe1:zi1ee");
        assert!(decode(&bytes).is_ok());
    }
}
