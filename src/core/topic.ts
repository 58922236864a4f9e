/**
 * MQTT topic filters with named captures: `site/+site/dev/+device/#rest`.
 * A `+name` level matches one level and binds it to `name`; `#name` (last)
 * matches the remaining levels (possibly none) and binds them joined by `/`.
 * Plain `+` and `#` match without binding.
 */
export interface TopicPattern {
  /** The filter as written in the config. */
  readonly source: string;
  /** The same filter with capture names removed: what is subscribed to. */
  readonly mqttFilter: string;
  /** Returns the captured fields, or null when the topic does not match. */
  match(topic: string): Record<string, string> | null;
}

type Level =
  { kind: 'literal'; text: string } | { kind: 'one'; name: string | null } | { kind: 'rest'; name: string | null };

const CAPTURE_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

export function compileTopicPattern(source: string): TopicPattern {
  if (source.length === 0) throw new Error('a topic filter cannot be empty');
  const parts = source.split('/');
  const levels: Level[] = parts.map((part, i) => {
    if (part.startsWith('+')) return { kind: 'one', name: captureName(part, source) };
    if (part.startsWith('#')) {
      if (i !== parts.length - 1) throw new Error(`"#" must be the last level in "${source}"`);
      return { kind: 'rest', name: captureName(part, source) };
    }
    if (part.includes('+') || part.includes('#')) {
      throw new Error(`"+" and "#" must fill a whole level in "${source}"`);
    }
    return { kind: 'literal', text: part };
  });
  const names = levels.flatMap((l) => (l.kind !== 'literal' && l.name !== null ? [l.name] : []));
  if (new Set(names).size !== names.length) throw new Error(`a capture name repeats in "${source}"`);
  const mqttFilter = levels.map((l) => (l.kind === 'literal' ? l.text : l.kind === 'one' ? '+' : '#')).join('/');

  return {
    source,
    mqttFilter,
    match(topic: string): Record<string, string> | null {
      const topicLevels = topic.split('/');
      // MQTT-4.7.2-1: wildcards at the first level do not match $-topics ($SYS, $share, ...)
      if (topic.startsWith('$') && levels[0]?.kind !== 'literal') return null;
      const fields: Record<string, string> = {};
      for (let i = 0; i < levels.length; i++) {
        const level = levels[i]!;
        if (level.kind === 'rest') {
          if (level.name !== null) fields[level.name] = topicLevels.slice(i).join('/');
          return fields;
        }
        const value = topicLevels[i];
        if (value === undefined) return null;
        if (level.kind === 'literal') {
          if (value !== level.text) return null;
        } else if (level.name !== null) {
          fields[level.name] = value;
        }
      }
      return topicLevels.length === levels.length ? fields : null;
    },
  };
}

function captureName(part: string, source: string): string | null {
  const name = part.slice(1);
  if (name === '') return null;
  if (!CAPTURE_NAME.test(name))
    throw new Error(`capture name "${name}" in "${source}" must be letters, digits or _ and not start with a digit`);
  return name;
}
