// JSON as Python reads and writes it, so the browser hashes exactly what the service signed.
//
// A receipt's output_hash and input_hash are SHA-256 over *canonical JSON* as ml/hashing.py
// writes it (Python's json.dumps, sorted keys, no spaces, floats by repr). JavaScript's
// JSON.parse loses what matters there: `5000.0` and `5000` become the same number, but Python
// hashes "5000.0" and "5000" differently, and big integers lose digits. So this module parses
// JSON into values that keep each number's kind (`PyInt`, `PyFloat`), and writes them back the
// way Python does: integers in plain decimal, floats by Python's repr (shortest round trip,
// `1e-05`, `1e+16`, `1.0`), strings escaping only `"`, `\` and control characters, object keys
// sorted by code point. Like Python, it rejects NaN and infinities and lone surrogates when
// writing, and nesting past 256 levels.

export const MAX_DEPTH = 256;

/** An integer as Python holds it: any size. */
export class PyInt {
  constructor(text) {
    this.value = BigInt(text);
  }
  toJSON() {
    return Number(this.value);
  }
}

/** A float as Python holds it: an IEEE double. */
export class PyFloat {
  constructor(value) {
    this.value = value;
  }
  toJSON() {
    return this.value;
  }
}

export class JsonError extends Error {}
export class CanonicalJsonError extends Error {}

const WHITESPACE = new Set([" ", "\t", "\n", "\r"]);
const ESCAPES = { '"': '"', "\\": "\\", "/": "/", b: "\b", f: "\f", n: "\n", r: "\r", t: "\t" };

/**
 * Parse JSON text as Python's json.loads does: numbers as PyInt or PyFloat, objects as plain
 * objects without a prototype (a later duplicate key wins), NaN/Infinity/-Infinity accepted.
 */
export function parseJson(text) {
  let i = 0;
  const fail = (what) => {
    throw new JsonError(`${what} at character ${i}`);
  };
  const skip = () => {
    while (i < text.length && WHITESPACE.has(text[i])) i += 1;
  };
  const literal = (word, value) => {
    if (text.startsWith(word, i)) {
      i += word.length;
      return value;
    }
    return fail("unexpected token");
  };
  const string = () => {
    i += 1; // the opening quote
    let out = "";
    for (;;) {
      const start = i;
      while (i < text.length && text[i] !== '"' && text[i] !== "\\" && text.charCodeAt(i) >= 0x20) i += 1;
      out += text.slice(start, i);
      if (i >= text.length) fail("unterminated string");
      const c = text[i];
      if (c === '"') {
        i += 1;
        return out;
      }
      if (c !== "\\") fail("control character in a string");
      const e = text[i + 1];
      if (e === "u") {
        const hex = text.slice(i + 2, i + 6);
        if (!/^[0-9a-fA-F]{4}$/.test(hex)) fail("bad \\u escape");
        out += String.fromCharCode(parseInt(hex, 16));
        i += 6;
      } else if (e in ESCAPES) {
        out += ESCAPES[e];
        i += 2;
      } else {
        fail("bad escape");
      }
    }
  };
  const number = () => {
    const match = /^-?(?:0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(text.slice(i, i + 4096));
    if (!match) {
      if (text.startsWith("-Infinity", i)) {
        i += 9;
        return new PyFloat(-Infinity);
      }
      return fail("unexpected token");
    }
    i += match[0].length;
    if (match[1] === undefined && match[2] === undefined) return new PyInt(match[0]);
    return new PyFloat(Number(match[0]));
  };
  const value = (depth) => {
    skip();
    if (depth > 100_000) fail("nested too deeply");
    const c = text[i];
    if (c === "{") {
      i += 1;
      const object = Object.create(null);
      skip();
      if (text[i] === "}") {
        i += 1;
        return object;
      }
      for (;;) {
        skip();
        if (text[i] !== '"') fail("expected a key");
        const key = string();
        skip();
        if (text[i] !== ":") fail("expected ':'");
        i += 1;
        object[key] = value(depth + 1);
        skip();
        if (text[i] === ",") i += 1;
        else if (text[i] === "}") {
          i += 1;
          return object;
        } else fail("expected ',' or '}'");
      }
    }
    if (c === "[") {
      i += 1;
      const array = [];
      skip();
      if (text[i] === "]") {
        i += 1;
        return array;
      }
      for (;;) {
        array.push(value(depth + 1));
        skip();
        if (text[i] === ",") i += 1;
        else if (text[i] === "]") {
          i += 1;
          return array;
        } else fail("expected ',' or ']'");
      }
    }
    if (c === '"') return string();
    if (c === "t") return literal("true", true);
    if (c === "f") return literal("false", false);
    if (c === "n") return literal("null", null);
    if (c === "N") return literal("NaN", new PyFloat(NaN));
    if (c === "I") return literal("Infinity", new PyFloat(Infinity));
    return number();
  };
  const result = value(0);
  skip();
  if (i !== text.length) fail("extra data");
  return result;
}

/** Python's repr of a finite double: shortest round-trip digits, Python's layout. */
export function pythonFloatRepr(x) {
  if (!Number.isFinite(x)) throw new CanonicalJsonError(`${x} has no canonical JSON form`);
  const sign = x < 0 || Object.is(x, -0) ? "-" : "";
  const [mantissa, exponent] = Math.abs(x).toExponential().split("e");
  const digits = mantissa.replace(".", "");
  const decpt = Number(exponent) + 1; // value = 0.DIGITS × 10^decpt
  if (decpt <= -4 || decpt > 16) {
    const exp = decpt - 1;
    const expText = `${exp < 0 ? "-" : "+"}${String(Math.abs(exp)).padStart(2, "0")}`;
    const body = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
    return `${sign}${body}e${expText}`;
  }
  if (decpt <= 0) return `${sign}0.${"0".repeat(-decpt)}${digits}`;
  if (decpt < digits.length) return `${sign}${digits.slice(0, decpt)}.${digits.slice(decpt)}`;
  return `${sign}${digits}${"0".repeat(decpt - digits.length)}.0`;
}

const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
const SHORT_ESCAPES = { '"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f" };

function writeString(s) {
  if (LONE_SURROGATE.test(s)) {
    throw new CanonicalJsonError("string contains a lone surrogate; it is not valid UTF-8");
  }
  // eslint-disable-next-line no-control-regex
  return `"${s.replace(/[\u0000-\u001f"\\]/g, (c) => SHORT_ESCAPES[c] ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`)}"`;
}

/** Compare two strings by Unicode code point, as Python sorts str keys. */
export function byCodePoint(a, b) {
  const x = [...a];
  const y = [...b];
  for (let k = 0; k < Math.min(x.length, y.length); k += 1) {
    const d = x[k].codePointAt(0) - y[k].codePointAt(0);
    if (d !== 0) return d;
  }
  return x.length - y.length;
}

/** The canonical JSON text of a parsed value (ml.hashing.canonical_json), or a refusal. */
export function canonicalJson(value, depth = 0) {
  if (value === null) return "null";
  if (value === true) return "true";
  if (value === false) return "false";
  if (value instanceof PyInt) return value.value.toString();
  if (value instanceof PyFloat) return pythonFloatRepr(value.value);
  if (typeof value === "string") return writeString(value);
  if (typeof value === "number") {
    return Number.isInteger(value) && !Object.is(value, -0) ? String(value) : pythonFloatRepr(value);
  }
  if (depth >= MAX_DEPTH) {
    throw new CanonicalJsonError(`the value is nested more than ${MAX_DEPTH} levels deep`);
  }
  if (Array.isArray(value)) return `[${value.map((v) => canonicalJson(v, depth + 1)).join(",")}]`;
  if (typeof value === "object") {
    const keys = Object.keys(value).sort(byCodePoint);
    return `{${keys.map((k) => `${writeString(k)}:${canonicalJson(value[k], depth + 1)}`).join(",")}}`;
  }
  throw new CanonicalJsonError(`a ${typeof value} is not a canonical JSON value`);
}

/** Indented JSON text of a parsed value, keys in their order, numbers exactly as parsed. */
export function prettyJson(value, indent = "  ", depth = 0) {
  const pad = indent.repeat(depth + 1);
  const end = indent.repeat(depth);
  if (Array.isArray(value)) {
    if (!value.length) return "[]";
    return `[\n${value.map((v) => pad + prettyJson(v, indent, depth + 1)).join(",\n")}\n${end}]`;
  }
  if (value !== null && typeof value === "object" && !(value instanceof PyInt) && !(value instanceof PyFloat)) {
    const keys = Object.keys(value);
    if (!keys.length) return "{}";
    return `{\n${keys.map((k) => `${pad}${writeString(k)}: ${prettyJson(value[k], indent, depth + 1)}`).join(",\n")}\n${end}}`;
  }
  return canonicalJson(value);
}

/** Python-style pretty text of a parsed value (for showing a document back to a person). */
export function toPlain(value) {
  if (value instanceof PyInt) return value.value <= BigInt(Number.MAX_SAFE_INTEGER) && value.value >= -BigInt(Number.MAX_SAFE_INTEGER) ? Number(value.value) : value.value.toString();
  if (value instanceof PyFloat) return value.value;
  if (Array.isArray(value)) return value.map(toPlain);
  if (value !== null && typeof value === "object") {
    const out = {};
    for (const k of Object.keys(value)) out[k] = toPlain(value[k]);
    return out;
  }
  return value;
}
