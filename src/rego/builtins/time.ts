/** time.* built-ins with IANA zones (via Intl) and Go reference layouts. */
import { builtinErr, typeErr } from '../errors.js';
import { isNumber, RObject, typeName, type Value } from '../value.js';
import { intArg, reg, str } from './registry.js';

const MAX_NS = 9223372036854775807n;
const MIN_NS = -9223372036854775808n;
const DAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];
const MONTHS = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October', 'November', 'December'];

interface Civil {
  y: number;
  mo: number; // 1-12
  d: number;
  h: number;
  mi: number;
  s: number;
  ns: number; // fractional nanoseconds
  wday: number;
  yday: number;
  offset: number; // seconds east of UTC
  zone: string;
}

const dtfCache = new Map<string, Intl.DateTimeFormat>();
function dtf(tz: string): Intl.DateTimeFormat {
  let f = dtfCache.get(tz);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone: tz,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
      era: 'short',
      timeZoneName: 'short',
    });
    dtfCache.set(tz, f);
  }
  return f;
}

export function checkZone(fn: string, tz: string): string {
  if (tz === '' || tz === 'UTC') return 'UTC';
  if (tz === 'Local') return process.env.TZ || 'UTC';
  try {
    dtf(tz);
    return tz;
  } catch {
    throw builtinErr(fn, `unknown time zone ${tz}`);
  }
}

function floorDiv(a: bigint, b: bigint): bigint {
  const q = a / b;
  return (a % b !== 0n && a < 0n) !== b < 0n && a % b !== 0n ? q - 1n : q;
}

/** Civil time of `ns` in zone `tz`. */
export function civil(ns: bigint, tz: string): Civil {
  const ms = floorDiv(ns, 1000000n);
  const frac = Number(ns - ms * 1000000n); // 0..999999 ns within the ms
  const msn = Number(ms);
  const date = new Date(msn);
  let y: number, mo: number, d: number, h: number, mi: number, s: number, zone = 'UTC';
  let offset = 0;
  if (tz === 'UTC' && msn >= -62135596800000) {
    // fast path: arithmetic on the day number
    const dayMs = 86400000;
    const days = Math.floor(msn / dayMs);
    const within = msn - days * dayMs;
    y = date.getUTCFullYear();
    mo = date.getUTCMonth() + 1;
    d = date.getUTCDate();
    h = Math.floor(within / 3600000);
    mi = Math.floor((within % 3600000) / 60000);
    s = Math.floor((within % 60000) / 1000);
    const msWithin0 = ((msn % 1000) + 1000) % 1000;
    return { y, mo, d, h, mi, s, ns: msWithin0 * 1000000 + frac, wday: (((days + 4) % 7) + 7) % 7, yday: y >= 100 ? Math.round((days * dayMs - Date.UTC(y, 0, 1)) / dayMs) + 1 : 0, offset: 0, zone: 'UTC' };
  }
  if (tz === 'UTC') {
    y = date.getUTCFullYear();
    mo = date.getUTCMonth() + 1;
    d = date.getUTCDate();
    h = date.getUTCHours();
    mi = date.getUTCMinutes();
    s = date.getUTCSeconds();
  } else {
    const parts = dtf(tz).formatToParts(date);
    const g = (t: string) => parts.find((p) => p.type === t)?.value ?? '';
    y = parseInt(g('year'), 10);
    if (g('era') === 'BC' || g('era') === 'B') y = 1 - y;
    mo = parseInt(g('month'), 10);
    d = parseInt(g('day'), 10);
    h = parseInt(g('hour'), 10);
    mi = parseInt(g('minute'), 10);
    s = parseInt(g('second'), 10);
    zone = g('timeZoneName');
    const asUtc = Date.UTC(y, mo - 1, d, h, mi, s);
    const fixed = new Date(0);
    fixed.setUTCFullYear(y, mo - 1, d);
    fixed.setUTCHours(h, mi, s, 0);
    offset = Math.round((fixed.getTime() - (msn - (((msn % 1000) + 1000) % 1000))) / 1000);
    if (/^GMT[+-]/.test(zone) || zone === 'GMT') {
      // keep Go-like numeric abbreviation when no name exists
      zone = offset === 0 ? 'UTC' : fmtOffset(offset, false, false);
    }
  }
  const msWithin = ((msn % 1000) + 1000) % 1000;
  const nsTotal = msWithin * 1000000 + frac;
  const wd = new Date(Date.UTC(2000, 0, 1));
  wd.setUTCFullYear(y, mo - 1, d);
  const wday = wd.getUTCDay();
  const start = new Date(Date.UTC(2000, 0, 1));
  start.setUTCFullYear(y, 0, 1);
  const yday = Math.round((wd.getTime() - start.getTime()) / 86400000) + 1;
  return { y, mo, d, h, mi, s, ns: nsTotal, wday, yday, offset, zone };
}

function fmtOffset(off: number, colon: boolean, seconds: boolean): string {
  const sign = off < 0 ? '-' : '+';
  const a = Math.abs(off);
  const hh = String(Math.floor(a / 3600)).padStart(2, '0');
  const mm = String(Math.floor((a % 3600) / 60)).padStart(2, '0');
  const ss = String(a % 60).padStart(2, '0');
  return sign + hh + (colon ? ':' : '') + mm + (seconds ? (colon ? ':' : '') + ss : '');
}

function nsArg(fn: string, v: Value): { ns: bigint; tz: string; layout?: string } {
  if (isNumber(v)) return { ns: toNs(fn, v), tz: 'UTC' };
  if (Array.isArray(v)) {
    if (v.length < 1 || v.length > 3) throw typeErr(fn, `operand 1 must be one of {number, array} of length 2 or 3`);
    const n = v[0];
    if (!isNumber(n)) throw typeErr(fn, `operand 1 must be number but got ${typeName(n)}`);
    const tz = v[1] === undefined ? '' : v[1];
    if (typeof tz !== 'string') throw typeErr(fn, `operand 1 timezone must be string but got ${typeName(tz)}`);
    const layout = v[2];
    if (layout !== undefined && typeof layout !== 'string') throw typeErr(fn, `operand 1 layout must be string but got ${typeName(layout)}`);
    return { ns: toNs(fn, n), tz: checkZone(fn, tz), layout: layout as string | undefined };
  }
  throw typeErr(fn, `operand 1 must be one of {number, array} but got ${typeName(v)}`);
}

function toNs(fn: string, n: bigint | number): bigint {
  const b = typeof n === 'bigint' ? n : BigInt(Math.trunc(n));
  if (b > MAX_NS || b < MIN_NS) throw builtinErr(fn, 'timestamp too big');
  return b;
}

reg('time.now_ns', 0, (_a, ctx) => ctx.nowNs);
reg('test.sleep', 1, (a) => {
  str('test.sleep', a, 0);
  return null;
});
reg('time.date', 1, ([v]) => {
  const { ns, tz } = nsArg('time.date', v);
  const c = civil(ns, tz);
  return [BigInt(c.y), BigInt(c.mo), BigInt(c.d)];
});
reg('time.clock', 1, ([v]) => {
  const { ns, tz } = nsArg('time.clock', v);
  const c = civil(ns, tz);
  return [BigInt(c.h), BigInt(c.mi), BigInt(c.s)];
});
reg('time.weekday', 1, ([v]) => {
  const { ns, tz } = nsArg('time.weekday', v);
  return DAYS[civil(ns, tz).wday];
});

function daysIn(y: number, m: number): number {
  return new Date(Date.UTC(2000, m, 0)).getUTCDate() === 0 ? 0 : new Date(Date.UTC(y < 100 && y >= 0 ? 2000 : y, m, 0)).getUTCDate();
}

/** Unix ns for a civil UTC date-time (Go normalisation: overflowing fields carry). */
function utcNs(y: number, mo: number, d: number, h: number, mi: number, s: number, ns: number): bigint {
  const dt = new Date(0);
  dt.setUTCFullYear(y, mo - 1, d);
  dt.setUTCHours(h, mi, s, 0);
  return BigInt(dt.getTime()) * 1000000n + BigInt(ns);
}

reg('time.add_date', 4, (a) => {
  const ns = toNs('time.add_date', intArg('time.add_date', a, 0));
  const y = Number(intArg('time.add_date', a, 1));
  const m = Number(intArg('time.add_date', a, 2));
  const d = Number(intArg('time.add_date', a, 3));
  const c = civil(ns, 'UTC');
  const r = utcNs(c.y + y, c.mo + m, c.d + d, c.h, c.mi, c.s, c.ns);
  if (r > MAX_NS || r < MIN_NS) throw builtinErr('time.add_date', 'time outside of valid range');
  return r;
});
reg('time.diff', 2, ([a, b]) => {
  const x = nsArg('time.diff', a);
  const y = nsArg('time.diff', b);
  let t1 = civil(x.ns, x.tz);
  let t2 = civil(y.ns, y.tz);
  if (x.ns > y.ns) [t1, t2] = [t2, t1];
  let year = t2.y - t1.y;
  let month = t2.mo - t1.mo;
  let day = t2.d - t1.d;
  let hour = t2.h - t1.h;
  let min = t2.mi - t1.mi;
  let sec = t2.s - t1.s;
  if (sec < 0) {
    sec += 60;
    min--;
  }
  if (min < 0) {
    min += 60;
    hour--;
  }
  if (hour < 0) {
    hour += 24;
    day--;
  }
  if (day < 0) {
    day += new Date(Date.UTC(t1.y, t1.mo, 0)).getUTCDate();
    month--;
  }
  if (month < 0) {
    month += 12;
    year--;
  }
  return [year, month, day, hour, min, sec].map((n) => BigInt(n));
});

// ---------- Go layouts ----------
const STD = [
  'January', 'Jan', 'Monday', 'Mon', 'MST',
  '2006', '-070000', '-07:00:00', '-0700', '-07:00', '-07',
  'Z070000', 'Z07:00:00', 'Z0700', 'Z07:00', 'Z07',
  '01', '02', '03', '04', '05', '06', '__2', '_2', '15',
  '.000000000', '.00000000', '.0000000', '.000000', '.00000', '.0000', '.000', '.00', '.0',
  '.999999999', '.99999999', '.9999999', '.999999', '.99999', '.9999', '.999', '.99', '.9',
  ',000000000', ',000000', ',000', ',999999999', ',999999', ',999',
  '002', '1', '2', '3', '4', '5', 'PM', 'pm',
];
function tokenizeLayout(layout: string): (string | { std: string })[] {
  const out: (string | { std: string })[] = [];
  let lit = '';
  let i = 0;
  while (i < layout.length) {
    let m: string | undefined;
    for (const s of STD) {
      if (layout.startsWith(s, i)) {
        // digits: avoid matching inside longer numbers
        if ((s === '1' || s === '2' || s === '3' || s === '4' || s === '5') && /[0-9]/.test(layout[i + 1] ?? '')) continue;
        if (s === 'Jan' && layout.startsWith('January', i)) continue;
        if (s === 'Mon' && layout.startsWith('Monday', i)) continue;
        if ((s.startsWith('.') || s.startsWith(',')) && /[0-9]/.test(layout[i + s.length] ?? '')) continue;
        m = s;
        break;
      }
    }
    if (m) {
      if (lit) out.push(lit);
      lit = '';
      out.push({ std: m });
      i += m.length;
    } else {
      lit += layout[i];
      i++;
    }
  }
  if (lit) out.push(lit);
  return out;
}

export function goFormatTime(c: Civil, layout: string): string {
  let out = '';
  for (const t of tokenizeLayout(layout)) {
    if (typeof t === 'string') {
      out += t;
      continue;
    }
    const s = t.std;
    const p2 = (n: number) => String(n).padStart(2, '0');
    switch (s) {
      case 'January':
        out += MONTHS[c.mo - 1];
        break;
      case 'Jan':
        out += MONTHS[c.mo - 1].slice(0, 3);
        break;
      case 'Monday':
        out += DAYS[c.wday];
        break;
      case 'Mon':
        out += DAYS[c.wday].slice(0, 3);
        break;
      case 'MST':
        out += c.zone;
        break;
      case '2006':
        out += String(c.y).padStart(4, '0');
        break;
      case '06':
        out += p2(c.y % 100);
        break;
      case '01':
        out += p2(c.mo);
        break;
      case '1':
        out += String(c.mo);
        break;
      case '02':
        out += p2(c.d);
        break;
      case '2':
        out += String(c.d);
        break;
      case '_2':
        out += String(c.d).padStart(2, ' ');
        break;
      case '002':
        out += String(c.yday).padStart(3, '0');
        break;
      case '__2':
        out += String(c.yday).padStart(3, ' ');
        break;
      case '15':
        out += p2(c.h);
        break;
      case '03':
        out += p2(c.h % 12 === 0 ? 12 : c.h % 12);
        break;
      case '3':
        out += String(c.h % 12 === 0 ? 12 : c.h % 12);
        break;
      case '04':
        out += p2(c.mi);
        break;
      case '4':
        out += String(c.mi);
        break;
      case '05':
        out += p2(c.s);
        break;
      case '5':
        out += String(c.s);
        break;
      case 'PM':
        out += c.h >= 12 ? 'PM' : 'AM';
        break;
      case 'pm':
        out += c.h >= 12 ? 'pm' : 'am';
        break;
      default:
        if (s.startsWith('Z') || s.startsWith('-')) {
          if (s.startsWith('Z') && c.offset === 0) {
            out += 'Z';
            break;
          }
          const body = s.slice(1);
          const colon = body.includes(':');
          const secs = body.replace(/:/g, '').length === 6;
          let o = fmtOffset(c.offset, colon, secs);
          if (body === '07') o = o.slice(0, 3);
          out += o;
        } else if (s[0] === '.' || s[0] === ',') {
          const digits = s.length - 1;
          const frac = String(c.ns).padStart(9, '0');
          if (s[1] === '0') out += s[0] + frac.slice(0, digits);
          else {
            const tr = frac.slice(0, digits).replace(/0+$/, '');
            if (tr) out += s[0] + tr;
          }
        }
    }
  }
  return out;
}

const NAMED_LAYOUTS: Record<string, string> = {
  ANSIC: 'Mon Jan _2 15:04:05 2006',
  UnixDate: 'Mon Jan _2 15:04:05 MST 2006',
  RubyDate: 'Mon Jan 02 15:04:05 -0700 2006',
  RFC822: '02 Jan 06 15:04 MST',
  RFC822Z: '02 Jan 06 15:04 -0700',
  RFC850: 'Monday, 02-Jan-06 15:04:05 MST',
  RFC1123: 'Mon, 02 Jan 2006 15:04:05 MST',
  RFC1123Z: 'Mon, 02 Jan 2006 15:04:05 -0700',
  RFC3339: '2006-01-02T15:04:05Z07:00',
  RFC3339Nano: '2006-01-02T15:04:05.999999999Z07:00',
  Kitchen: '3:04PM',
  Stamp: 'Jan _2 15:04:05',
  StampMilli: 'Jan _2 15:04:05.000',
  StampMicro: 'Jan _2 15:04:05.000000',
  StampNano: 'Jan _2 15:04:05.000000000',
  DateTime: '2006-01-02 15:04:05',
  DateOnly: '2006-01-02',
  TimeOnly: '15:04:05',
};

reg('time.format', 1, ([v]) => {
  const { ns, tz, layout } = nsArg('time.format', v);
  const c = civil(ns, tz);
  const l = layout === undefined ? NAMED_LAYOUTS.RFC3339Nano : (NAMED_LAYOUTS[layout] ?? layout);
  return goFormatTime(c, l);
});

/** Parse `value` by Go layout; returns unix ns. */
export function goParseTime(fn: string, layout: string, value: string): bigint {
  const toks = tokenizeLayout(NAMED_LAYOUTS[layout] ?? layout);
  let i = 0;
  let y = 1, mo = 1, d = 1, h = 0, mi = 0, s = 0, ns = 0, off: number | undefined, pm: boolean | undefined;
  const fail = (): never => {
    throw builtinErr(fn, `parsing time ${JSON.stringify(value)} as ${JSON.stringify(layout)}: cannot parse ${JSON.stringify(value.slice(i))}`);
  };
  const num = (min: number, max: number): number => {
    const m = new RegExp(`^[0-9]{${min},${max}}`).exec(value.slice(i));
    if (!m) fail();
    i += m![0].length;
    return parseInt(m![0], 10);
  };
  for (let ti = 0; ti < toks.length; ti++) {
    const t = toks[ti];
    if (typeof t === 'string') {
      if (!value.startsWith(t, i)) fail();
      i += t.length;
      continue;
    }
    switch (t.std) {
      case '2006':
        y = num(4, 4);
        break;
      case '06': {
        const yy = num(2, 2);
        y = yy >= 69 ? 1900 + yy : 2000 + yy;
        break;
      }
      case '01':
        mo = num(2, 2);
        break;
      case '1':
        mo = num(1, 2);
        break;
      case 'January':
      case 'Jan': {
        const names = t.std === 'January' ? MONTHS : MONTHS.map((m) => m.slice(0, 3));
        const k = names.findIndex((n) => value.slice(i, i + n.length).toLowerCase() === n.toLowerCase());
        if (k < 0) fail();
        mo = k + 1;
        i += names[k].length;
        break;
      }
      case 'Monday':
      case 'Mon': {
        const names = t.std === 'Monday' ? DAYS : DAYS.map((m) => m.slice(0, 3));
        const k = names.findIndex((n) => value.slice(i, i + n.length).toLowerCase() === n.toLowerCase());
        if (k < 0) fail();
        i += names[k].length;
        break;
      }
      case '02':
        d = num(2, 2);
        break;
      case '2':
        d = num(1, 2);
        break;
      case '_2':
        if (value[i] === ' ') i++;
        d = num(1, 2);
        break;
      case '15':
        h = num(1, 2);
        break;
      case '03':
      case '3':
        h = num(t.std === '03' ? 2 : 1, 2);
        break;
      case '04':
        mi = num(2, 2);
        break;
      case '4':
        mi = num(1, 2);
        break;
      case '05':
        s = num(2, 2);
        break;
      case '5':
        s = num(1, 2);
        break;
      case 'PM':
      case 'pm': {
        const x = value.slice(i, i + 2).toUpperCase();
        if (x !== 'AM' && x !== 'PM') fail();
        pm = x === 'PM';
        i += 2;
        break;
      }
      case 'MST': {
        const m = /^[A-Z]{3,5}|^[+-]\d+/.exec(value.slice(i));
        if (!m) fail();
        if (m![0] === 'UTC' || m![0] === 'GMT') off = 0;
        i += m![0].length;
        break;
      }
      default:
        if (t.std.startsWith('Z') || t.std.startsWith('-')) {
          if (t.std.startsWith('Z') && value[i] === 'Z') {
            off = 0;
            i++;
            break;
          }
          const m = /^([+-])(\d{2}):?(\d{2})?(?::?(\d{2}))?/.exec(value.slice(i));
          if (!m) fail();
          off = (m![1] === '-' ? -1 : 1) * (parseInt(m![2], 10) * 3600 + parseInt(m![3] ?? '0', 10) * 60 + parseInt(m![4] ?? '0', 10));
          i += m![0].length;
        } else if (t.std[0] === '.' || t.std[0] === ',') {
          if (value[i] === '.' || value[i] === ',') {
            i++;
            const m = /^[0-9]+/.exec(value.slice(i));
            if (!m) fail();
            ns = parseInt(m![0].slice(0, 9).padEnd(9, '0'), 10);
            i += m![0].length;
          } else if (t.std[1] === '0') fail();
        }
    }
    // Go accepts fractional seconds after seconds even if the layout lacks them
    if ((t.std === '05' || t.std === '5') && (value[i] === '.' || value[i] === ',') && !(typeof toks[ti + 1] === 'object' && ((toks[ti + 1] as { std: string }).std.startsWith('.') || (toks[ti + 1] as { std: string }).std.startsWith(',')))) {
      i++;
      const m = /^[0-9]+/.exec(value.slice(i));
      if (m) {
        ns = parseInt(m[0].slice(0, 9).padEnd(9, '0'), 10);
        i += m[0].length;
      }
    }
  }
  if (i !== value.length) throw builtinErr(fn, `parsing time ${JSON.stringify(value)}: extra text: ${JSON.stringify(value.slice(i))}`);
  if (pm !== undefined) {
    if (pm && h < 12) h += 12;
    if (!pm && h === 12) h = 0;
  }
  if (mo < 1 || mo > 12) throw builtinErr(fn, `parsing time ${JSON.stringify(value)}: month out of range`);
  if (d < 1 || d > new Date(Date.UTC(2000, mo, 0)).getUTCDate() + (mo === 2 ? 1 : 0)) throw builtinErr(fn, `parsing time ${JSON.stringify(value)}: day out of range`);
  if (h > 23 || mi > 59 || s > 59) throw builtinErr(fn, `parsing time ${JSON.stringify(value)}: value out of range`);
  let r = utcNs(y, mo, d, h, mi, s, 0);
  if (off !== undefined) r -= BigInt(off) * 1000000000n;
  // exact ns (avoid float ms precision loss)
  r = r + BigInt(ns);
  if (r > MAX_NS || r < MIN_NS) throw builtinErr(fn, 'time outside of valid range');
  return r;
}

reg('time.parse_ns', 2, (a) => goParseTime('time.parse_ns', str('time.parse_ns', a, 0), str('time.parse_ns', a, 1)));
reg('time.parse_rfc3339_ns', 1, (a) => {
  const v = str('time.parse_rfc3339_ns', a, 0);
  const m = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:([Zz])|([+-])(\d{2}):(\d{2}))$/.exec(v);
  if (!m) throw builtinErr('time.parse_rfc3339_ns', `parsing time ${JSON.stringify(v)} as "2006-01-02T15:04:05Z07:00": cannot parse`);
  const off = m[8] ? 0 : (m[9] === '-' ? -1 : 1) * (parseInt(m[10], 10) * 3600 + parseInt(m[11], 10) * 60);
  const base = utcNs(+m[1], +m[2], +m[3], +m[4], +m[5], +m[6], 0) - BigInt(off) * 1000000000n;
  const frac = m[7] ? BigInt(m[7].slice(0, 9).padEnd(9, '0')) : 0n;
  const r = base + frac;
  if (r > MAX_NS || r < MIN_NS) throw builtinErr('time.parse_rfc3339_ns', 'time outside of valid range');
  return r;
});

const UNITS: Record<string, number> = { ns: 1, us: 1e3, 'µs': 1e3, 'μs': 1e3, ms: 1e6, s: 1e9, m: 60e9, h: 3600e9 };
reg('time.parse_duration_ns', 1, (a) => {
  const s0 = str('time.parse_duration_ns', a, 0);
  let s = s0;
  let neg = false;
  if (s[0] === '-' || s[0] === '+') {
    neg = s[0] === '-';
    s = s.slice(1);
  }
  if (s === '0') return 0n;
  if (s === '') throw builtinErr('time.parse_duration_ns', `time: invalid duration ${JSON.stringify(s0)}`);
  let total = 0;
  while (s.length) {
    const m = /^([0-9]*(?:\.[0-9]*)?)(ns|us|µs|μs|ms|s|m|h)/.exec(s);
    if (!m || m[1] === '' || m[1] === '.') throw builtinErr('time.parse_duration_ns', `time: invalid duration ${JSON.stringify(s0)}`);
    total += parseFloat(m[1]) * UNITS[m[2]];
    s = s.slice(m[0].length);
  }
  const r = BigInt(Math.round(total));
  return neg ? -r : r;
});

