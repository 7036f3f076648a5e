//! The mutator: a seeded xorshift generator and a handful of byte-level edits, stacked 1 to 8 deep.

/// Inputs are kept under this size (every parser under test bounds its input well below).
pub const MAX_LEN: usize = 64 * 1024;

/// Numbers at the edges of integer types and of the limits odseed sets.
const INTERESTING: &[&[u8]] = &[
    b"0",
    b"-1",
    b"-0",
    b"1",
    b"255",
    b"256",
    b"65535",
    b"65536",
    b"2147483647",
    b"2147483648",
    b"4294967295",
    b"4294967296",
    b"9223372036854775807",
    b"9223372036854775808",
    b"18446744073709551615",
    b"18446744073709551616",
    b"99999999999999999999999",
    b"\0",
    b"\r\n",
    b"\n",
    b"\x1b[2J",
    b"\xc2\x9b",
    b"\xff\xfe",
    b"%00",
    b"..",
    b"/",
];

pub struct Mutator {
    state: u64,
    dictionary: &'static [&'static [u8]],
}

impl Mutator {
    pub fn new(seed: u64, dictionary: &'static [&'static [u8]]) -> Mutator {
        Mutator { state: seed | 1, dictionary }
    }

    fn next(&mut self) -> u64 {
        // xorshift64*
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        self.state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }

    /// A new input made from one of `pool` by 1 to 8 edits.
    pub fn mutate(&mut self, pool: &[Vec<u8>]) -> Vec<u8> {
        let mut data = pool[self.below(pool.len())].clone();
        for _ in 0..1 + self.below(8) {
            self.edit(&mut data, pool);
        }
        data.truncate(MAX_LEN);
        data
    }

    fn token(&mut self) -> &'static [u8] {
        let n = self.dictionary.len() + INTERESTING.len();
        match self.below(n) {
            i if i < self.dictionary.len() => self.dictionary[i],
            i => INTERESTING[i - self.dictionary.len()],
        }
    }

    fn edit(&mut self, data: &mut Vec<u8>, pool: &[Vec<u8>]) {
        let len = data.len();
        match self.below(9) {
            0 if len > 0 => {
                let i = self.below(len);
                data[i] ^= 1 << self.below(8);
            }
            1 if len > 0 => {
                let i = self.below(len);
                data[i] = self.next() as u8;
            }
            2 => {
                let at = self.below(len + 1);
                let n = 1 + self.below(8);
                let bytes: Vec<u8> = (0..n).map(|_| self.next() as u8).collect();
                data.splice(at..at, bytes);
            }
            3 if len > 0 => {
                let at = self.below(len);
                let n = 1 + self.below((len - at).min(64));
                data.drain(at..at + n);
            }
            4 if len > 0 => {
                let at = self.below(len);
                let n = 1 + self.below((len - at).min(256));
                let copy = data[at..at + n].to_vec();
                let to = self.below(len + 1);
                data.splice(to..to, copy);
            }
            5 | 6 => {
                let at = self.below(len + 1);
                let token = self.token();
                data.splice(at..at, token.iter().copied());
            }
            7 if len > 0 => {
                // Overwrite a run of digits (or any byte) with an interesting number.
                let at = self.below(len);
                let end = (at..len).find(|&i| !data[i].is_ascii_digit()).unwrap_or(len).max(at + 1);
                let token = INTERESTING[self.below(INTERESTING.len())];
                data.splice(at..end, token.iter().copied());
            }
            _ => {
                // Splice: this input's head with another's tail.
                let other = &pool[self.below(pool.len())];
                let cut = self.below(len + 1);
                let from = self.below(other.len() + 1);
                data.truncate(cut);
                data.extend_from_slice(&other[from..]);
            }
        }
    }
}
