/**
 * Reads a V8 CPU profile (node --cpu-prof) and prints where the time went: the top functions by
 * self time, self time per package or source file, and Tessera's own functions by total (inclusive)
 * time. For the profile of a benchmark run, see README "Performance".
 *
 *   node dist/bench/profile-top.js /tmp/tessera-prof/CPU.*.cpuprofile [top]
 */
import { readFileSync } from 'node:fs';
import { fmt, table } from './lib.js';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** node_modules/<package>, the project-relative source file, node:internal, or V8's own entries. */
function area(url: string, functionName: string): string {
  if (!url) return functionName.startsWith('(') ? functionName : '(native)';
  const modules = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (modules) return modules[1]!;
  if (url.startsWith('node:')) return url;
  const project = /\/dist\/(.+)$/.exec(url);
  return project ? project[1]! : url.replace(/^file:\/\//, '');
}

function place(frame: CallFrame): string {
  return `${frame.functionName || '(anonymous)'} ${area(frame.url, frame.functionName)}:${frame.lineNumber + 1}`;
}

function main(): void {
  const file = process.argv[2];
  if (!file) {
    process.stderr.write('usage: node dist/bench/profile-top.js <file.cpuprofile> [top]\n');
    process.exit(2);
  }
  const top = Number(process.argv[3] ?? 25);
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  let total = 0;
  profile.samples.forEach((id, i) => {
    const delta = profile.timeDeltas[i] ?? 0;
    self.set(id, (self.get(id) ?? 0) + delta);
    total += delta;
  });

  const selfByPlace = new Map<string, number>();
  const selfByArea = new Map<string, number>();
  for (const [id, time] of self) {
    const frame = byId.get(id)!.callFrame;
    selfByPlace.set(place(frame), (selfByPlace.get(place(frame)) ?? 0) + time);
    const a = area(frame.url, frame.functionName);
    selfByArea.set(a, (selfByArea.get(a) ?? 0) + time);
  }

  // Inclusive time of Tessera's own functions (dist/src/…), each counted once per stack.
  const parent = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
  const inclusive = new Map<string, number>();
  for (const [id, time] of self) {
    const seen = new Set<string>();
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const frame = byId.get(at)!.callFrame;
      if (!/\/dist\/src\//.test(frame.url)) continue;
      const key = place(frame);
      if (seen.has(key)) continue;
      seen.add(key);
      inclusive.set(key, (inclusive.get(key) ?? 0) + time);
    }
  }

  // Shares of the busy time: idle samples say how much of the run the server waited, not where work went.
  const idle = selfByArea.get('(idle)') ?? 0;
  const busy = total - idle;
  const pct = (time: number) => `${((time / busy) * 100).toFixed(1)}%`;
  const rows = (map: Map<string, number>, n: number) =>
    [...map.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([name, time]) => [pct(time), fmt.ms(time / 1000), name]);

  for (const key of selfByPlace.keys()) if (key.startsWith('(idle)')) selfByPlace.delete(key);
  selfByArea.delete('(idle)');
  process.stdout.write(`${file}: ${fmt.ms(total / 1000)} ms sampled, ${fmt.ms(idle / 1000)} ms of it idle; shares below are of the ${fmt.ms(busy / 1000)} ms busy\n\n`);
  process.stdout.write(`Top ${top} functions by self time\n${table(['self', 'ms', 'function'], rows(selfByPlace, top), new Set([0, 1]))}\n\n`);
  process.stdout.write(`Self time by package or file\n${table(['self', 'ms', 'where'], rows(selfByArea, top), new Set([0, 1]))}\n\n`);
  process.stdout.write(`Tessera's functions by total time\n${table(['total', 'ms', 'function'], rows(inclusive, top), new Set([0, 1]))}\n`);
}

main();
