import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TestPki {
  readonly dir: string;
  /** file paths */
  readonly caCert: string;
  readonly serverCert: string;
  readonly serverKey: string;
  /** PEM text */
  pem(file: string): string;
  /** Issues a client certificate with this CN, signed by the CA (or by a CA of its own: `foreign`). */
  client(cn: string, opts?: { foreign?: boolean }): { cert: string; key: string };
}

function openssl(dir: string, args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
}

function newCa(dir: string, name: string): { cert: string; key: string } {
  const key = join(dir, `${name}.key`);
  const cert = join(dir, `${name}.pem`);
  openssl(dir, [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-keyout',
    key,
    '-out',
    cert,
    '-days',
    '2',
    '-subj',
    `/CN=${name}`,
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  return { cert, key };
}

function issue(
  dir: string,
  ca: { cert: string; key: string },
  name: string,
  cn: string,
  ext: string,
): { cert: string; key: string } {
  const key = join(dir, `${name}.key`);
  const csr = join(dir, `${name}.csr`);
  const cert = join(dir, `${name}.pem`);
  const extFile = join(dir, `${name}.ext`);
  writeFileSync(extFile, ext);
  openssl(dir, [
    'req',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-keyout',
    key,
    '-out',
    csr,
    '-subj',
    `/CN=${cn}`,
  ]);
  openssl(dir, [
    'x509',
    '-req',
    '-in',
    csr,
    '-CA',
    ca.cert,
    '-CAkey',
    ca.key,
    '-CAcreateserial',
    '-out',
    cert,
    '-days',
    '2',
    '-extfile',
    extFile,
  ]);
  return { cert, key };
}

/**
 * A throw-away PKI made with the openssl binary: a CA, a server certificate for
 * 127.0.0.1/localhost, and client certificates on demand.
 */
export function makePki(): TestPki {
  const dir = mkdtempSync(join(tmpdir(), 'edgehaul-test-pki-'));
  const ca = newCa(dir, 'ca');
  const server = issue(
    dir,
    ca,
    'server',
    'localhost',
    'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n',
  );
  let foreign: { cert: string; key: string } | null = null;
  let n = 0;
  return {
    dir,
    caCert: ca.cert,
    serverCert: server.cert,
    serverKey: server.key,
    pem: (file) => readFileSync(file, 'utf8'),
    client(cn, opts = {}) {
      const signer = opts.foreign === true ? (foreign ??= newCa(dir, 'foreign-ca')) : ca;
      const c = issue(dir, signer, `client-${n++}`, cn, 'extendedKeyUsage=clientAuth\n');
      return { cert: readFileSync(c.cert, 'utf8'), key: readFileSync(c.key, 'utf8') };
    },
  };
}
