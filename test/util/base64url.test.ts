import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeBase64UrlStrict, encodeBase64Url } from '../../src/util/base64url.js';

test('base64url round-trips and rejects every non-canonical spelling', () => {
  assert.equal(decodeBase64UrlStrict(encodeBase64Url('hello')).toString(), 'hello');
  assert.equal(decodeBase64UrlStrict('').length, 0);
  for (const bad of ['aGVsbG8=', 'a+b/', 'aGVs bG8', 'a', 'aGVsbG9', 'aGVsbG9=', 'AB']) {
    // 'AB' decodes to one byte but its canonical spelling is 'AA'; 'aGVsbG9' has non-zero trailing bits.
    if (bad === 'aGVsbG9' || bad === 'AB') {
      assert.throws(() => decodeBase64UrlStrict(bad), /canonical/, bad);
    } else {
      assert.throws(() => decodeBase64UrlStrict(bad), /base64url/, bad);
    }
  }
  assert.equal(decodeBase64UrlStrict('AA').length, 1);
});
