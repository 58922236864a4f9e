/**
 * What systemd/edgehaul.service gives the daemon besides its arguments: the
 * node flags of ExecStart (between `node` and the script) and the
 * Environment= settings for the allocator (MALLOC_*).
 */
export function unitRuntime(unitText: string): { nodeArgs: string[]; env: Record<string, string> } {
  const exec = /^ExecStart=(.*)$/m.exec(unitText);
  if (exec === null) throw new Error('the unit has no ExecStart=');
  const words = exec[1]!.trim().split(/\s+/);
  const node = words.findIndex((w) => w === 'node' || w.endsWith('/node'));
  const script = words.findIndex((w, i) => i > node && !w.startsWith('-'));
  if (node < 0 || script < 0) throw new Error(`cannot find node and its script in ExecStart=${exec[1]!}`);
  const env: Record<string, string> = {};
  for (const m of unitText.matchAll(/^Environment=(MALLOC_[A-Z_]+)=(\S+)$/gm)) env[m[1]!] = m[2]!;
  return { nodeArgs: words.slice(node + 1, script), env };
}
