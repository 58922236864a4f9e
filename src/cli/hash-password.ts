import { hashPassword } from '../security/password.js';

/** Reads one line from a terminal without echoing it. */
function readHidden(prompt: string): Promise<string> {
  const stdin = process.stdin;
  return new Promise((resolve, reject) => {
    process.stderr.write(prompt);
    let text = '';
    stdin.setRawMode(true);
    stdin.resume();
    stdin.setEncoding('utf8');
    const done = (err: Error | null): void => {
      stdin.setRawMode(false);
      stdin.pause();
      stdin.removeListener('data', onData);
      process.stderr.write('\n');
      if (err !== null) reject(err);
      else resolve(text);
    };
    const onData = (chunk: string): void => {
      for (const ch of chunk) {
        if (ch === '\r' || ch === '\n') return done(null);
        if (ch === '\u0003') return done(new Error('interrupted'));
        if (ch === '\u0004') return done(null);
        if (ch === '\u007f' || ch === '\b') text = text.slice(0, -1);
        else text += ch;
      }
    };
    stdin.on('data', onData);
  });
}

async function readAll(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * `edgehaul hash-password`: the password from the terminal (asked twice, no
 * echo) or from stdin (first line) for scripts; prints the hash for
 * `ingest.embedded.auth.users[].password_hash`. Never takes the password as an
 * argument: arguments end up in shell histories and `ps`.
 */
export async function runHashPassword(): Promise<number> {
  let password: string;
  if (process.stdin.isTTY) {
    password = await readHidden('password: ');
    const again = await readHidden('again: ');
    if (again !== password) {
      process.stderr.write('the passwords differ\n');
      return 1;
    }
  } else {
    password = (await readAll()).split(/\r?\n/)[0] ?? '';
  }
  if (password.length === 0) {
    process.stderr.write('empty password\n');
    return 1;
  }
  process.stdout.write(`${await hashPassword(password)}\n`);
  return 0;
}
