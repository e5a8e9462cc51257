// The E2B SDK flow of integration/e2b_test.go: the unmodified `e2b` package
// against a Chaser server (E2B_API_URL, E2B_SANDBOX_URL, E2B_API_KEY).
// Prints one JSON object with what each step saw; the Go test checks it.
import http from 'node:http'
import { Sandbox, CommandExitError, AuthenticationError, NotFoundError, SandboxNotFoundError } from 'e2b'

const out = {}
const step = (name) => { out.last = name }
const RUN = process.env.RUN_ID
const ms = (t) => Math.round((performance.now() - t) * 10) / 10
const name = (e) => e?.constructor?.name ?? String(e)

function get(host, path) {
  const u = new URL(process.env.E2B_API_URL)
  return new Promise((resolve, reject) => {
    const req = http.request({ host: u.hostname, port: u.port, path, headers: { Host: host } }, (res) => {
      let body = ''
      res.on('data', (d) => { body += d })
      res.on('end', () => resolve({ status: res.statusCode, body }))
    })
    req.on('error', reject)
    req.end()
  })
}

try {
  step('create')
  const t0 = performance.now()
  const sbx = await Sandbox.create({ metadata: { purpose: 'chaser-e2b-test', run: RUN }, envs: { GREETING: 'hello-env' } })
  out.createMs = ms(t0)
  const first = await sbx.commands.run('echo hi')
  out.createToFirstRunMs = ms(t0)
  out.sandboxId = sbx.sandboxId
  out.echo = { stdout: first.stdout, exitCode: first.exitCode }
  out.env = (await sbx.commands.run('echo $GREETING')).stdout
  out.rootUid = (await sbx.commands.run('id -u', { user: 'root' })).stdout

  step('exit 3')
  try {
    await sbx.commands.run('echo out; exit 3')
    out.exit3 = 'no error'
  } catch (e) {
    out.exit3 = { error: name(e), isCommandExitError: e instanceof CommandExitError, exitCode: e.exitCode, stdout: e.stdout }
  }

  step('files')
  await sbx.files.write('/tmp/e2b/hello.txt', 'hello from e2b')
  out.read = await sbx.files.read('/tmp/e2b/hello.txt')
  out.list = (await sbx.files.list('/tmp/e2b')).map((e) => ({ name: e.name, type: e.type, path: e.path }))
  try {
    await sbx.files.read('/tmp/e2b/missing.txt')
    out.readMissing = 'no error'
  } catch (e) {
    out.readMissing = name(e)
  }

  step('background')
  const bg = await sbx.commands.run('sleep 300', { background: true })
  out.bgPid = bg.pid
  out.bgListed = (await sbx.commands.list()).some((p) => p.pid === bg.pid)
  out.bgKilled = await bg.kill()
  out.killUnknownPid = await sbx.commands.kill(999999)

  step('pty')
  let ptyOut = ''
  const dec = new TextDecoder()
  const pty = await sbx.pty.create({ cols: 80, rows: 24, onData: (d) => { ptyOut += dec.decode(d) } })
  await sbx.pty.resize(pty.pid, { cols: 100, rows: 30 })
  await sbx.pty.sendInput(pty.pid, new TextEncoder().encode('stty size; echo pty-$((6*7))\n'))
  for (let i = 0; i < 100 && !ptyOut.includes('pty-42'); i++) await new Promise((r) => setTimeout(r, 100))
  out.ptyAnswered = ptyOut.includes('pty-42')
  out.ptySize = ptyOut.includes('30 100')
  out.ptyKilled = await sbx.pty.kill(pty.pid)

  step('getHost')
  await sbx.commands.run('cd /tmp/e2b && exec python3 -m http.server 8000 --bind 127.0.0.1', { background: true })
  const host = sbx.getHost(8000)
  out.host = host
  let res = { status: 0 }
  for (let i = 0; i < 100; i++) {
    res = await get(host, '/hello.txt').catch((e) => ({ status: 0, body: String(e) }))
    if (res.status === 200) break
    await new Promise((r) => setTimeout(r, 100))
  }
  out.hostStatus = res.status
  out.hostBody = res.body

  step('setTimeout')
  await sbx.setTimeout(120_000)
  const info = await sbx.getInfo()
  out.endAtInS = Math.round((info.endAt.getTime() - Date.now()) / 1000)
  out.infoMetadata = info.metadata

  step('list')
  out.listed = (await Sandbox.list({ query: { metadata: { run: RUN } } }).nextItems()).map((s) => s.sandboxId)
  out.listedOther = (await Sandbox.list({ query: { metadata: { run: 'another-run' } } }).nextItems()).length

  step('round trip')
  const times = []
  for (let i = 0; i < 20; i++) {
    const t = performance.now()
    await sbx.commands.run('true')
    times.push(ms(t))
  }
  times.sort((a, b) => a - b)
  out.trueMedianMs = times[10]

  step('timeoutMs')
  // Count processes running `sleep 30` (from /proc, not Chaser's list).
  const sleeps = "for f in /proc/[0-9]*/cmdline; do tr '\\0' ' ' < $f 2>/dev/null; echo; done | grep -c '^sleep 30 ' || true"
  try {
    await sbx.commands.run('sleep 30', { timeoutMs: 1000 })
    out.runTimeout = 'no error'
  } catch (e) {
    out.runTimeout = name(e)
  }
  // The counter sees a running one (so 0 below means gone).
  const probe = await sbx.commands.run('sleep 30', { background: true, timeoutMs: 0 })
  out.sleepsProbe = Number((await sbx.commands.run(sleeps)).stdout.trim())
  await probe.kill()
  out.sleepsLeft = -1
  for (let i = 0; i < 30; i++) {
    out.sleepsLeft = Number((await sbx.commands.run(sleeps)).stdout.trim())
    if (out.sleepsLeft === 0) break
    await new Promise((r) => setTimeout(r, 100))
  }

  step('metrics')
  out.metrics = (await sbx.getMetrics()).map((m) => ({ ...m, timestamp: m.timestamp.getTime() }))

  step('watchDir')
  await sbx.commands.run('mkdir -p /tmp/e2b/w/sub')
  const seen = []
  const wh = await sbx.files.watchDir('/tmp/e2b/w', (ev) => seen.push({ name: ev.name, type: ev.type }))
  await sbx.commands.run('echo x > /tmp/e2b/w/f && echo y > /tmp/e2b/w/sub/g')
  for (let i = 0; i < 50 && !seen.some((e) => e.name === 'f'); i++) await new Promise((r) => setTimeout(r, 100))
  await new Promise((r) => setTimeout(r, 300))
  await wh.stop()
  out.watched = seen
  const seenR = []
  const whR = await sbx.files.watchDir('/tmp/e2b/w', (ev) => seenR.push({ name: ev.name, type: ev.type }), { recursive: true })
  // A directory and a file in it made back to back: the file may exist
  // before the agent watches the new directory.
  await sbx.commands.run('echo z > /tmp/e2b/w/sub/h && mkdir -p /tmp/e2b/w/new/deep && echo n > /tmp/e2b/w/new/deep/n && mv /tmp/e2b/w/f /tmp/e2b/w/f2 && chmod 600 /tmp/e2b/w/f2 && rm /tmp/e2b/w/f2')
  for (let i = 0; i < 50 && !seenR.some((e) => e.type === 'remove'); i++) await new Promise((r) => setTimeout(r, 100))
  await whR.stop()
  out.watchedRecursive = seenR

  step('list paging')
  // A second create to first result, once the server is warm.
  const t2 = performance.now()
  const sbx2 = await Sandbox.create({ metadata: { run: RUN, second: '1' } })
  await sbx2.commands.run('echo hi')
  out.createToFirstRunWarmMs = ms(t2)
  const pager = Sandbox.list({ query: { metadata: { run: RUN } }, limit: 1 })
  out.paged = []
  while (pager.hasNext && out.paged.length < 5) out.paged.push(...(await pager.nextItems()).map((x) => x.sandboxId))
  out.secondId = sbx2.sandboxId
  out.pausedListed = (await Sandbox.list({ query: { state: ['paused'] } }).nextItems()).length
  await sbx2.kill()

  // A fork storm at the pids limit: the sandbox lives on, and kill
  // ends it whole (every process at once, then the runtime's delete).
  step('fork storm')
  const storm = await Sandbox.create({ metadata: { run: RUN, storm: '1' } })
  // Made seconds after the server's first sandbox: its agent installed
  // the seccomp filter the server compiled once (--seccomp-fd).
  out.stormSeccomp = (await storm.commands.run("tr '\\0' ' ' < /proc/1/cmdline; echo; grep ^Seccomp: /proc/self/status; unshare -U true 2>/dev/null && echo unshared || echo refused")).stdout
  await storm.commands.run('bomb(){ bomb | bomb & }; bomb', { background: true })
  await new Promise((r) => setTimeout(r, 3000))
  out.stormRunning = await storm.isRunning()
  try {
    const r = await storm.commands.run('echo hi')
    out.stormRun = r.stdout
  } catch (e) {
    out.stormRun = `${name(e)}: ${e.message}`
  }
  const tk = performance.now()
  out.stormKilled = await storm.kill()
  out.stormKillMs = ms(tk)
  try {
    await Sandbox.connect(storm.sandboxId)
    out.stormConnect = 'no error'
  } catch (e) {
    out.stormConnect = name(e)
  }

  step('a Chaser session')
  const everything = []
  const all = Sandbox.list()
  while (all.hasNext) everything.push(...(await all.nextItems()))
  const own = everything.find((x) => x.sandboxId === process.env.OWN_ID)
  out.ownListed = own && { templateId: own.templateId, state: own.state, started: !isNaN(own.startedAt.getTime()), endsLater: own.endAt > own.startedAt, cpuCount: own.cpuCount, memoryMB: own.memoryMB }
  out.ownRun = (await (await Sandbox.connect(process.env.OWN_ID)).commands.run('echo own')).stdout

  step('pause')
  try {
    await sbx.pause()
    out.pause = 'no error'
  } catch (e) {
    out.pause = { error: name(e), message: e.message }
  }

  step('unknown user')
  try {
    await sbx.commands.run('true', { user: 'nosuchuser' })
    out.unknownUser = 'no error'
  } catch (e) {
    out.unknownUser = name(e)
  }
  try {
    await sbx.files.read('/etc/hostname', { user: 'nosuchuser' })
    out.unknownUserRead = 'no error'
  } catch (e) {
    out.unknownUserRead = name(e)
  }

  step('rate limit')
  try {
    const x = await Sandbox.create({ apiKey: process.env.LIMITED_KEY, retries: 0 })
    await x.kill()
    out.rateLimited = 'no error'
  } catch (e) {
    out.rateLimited = name(e)
  }

  step('kill')
  out.isRunningBefore = await sbx.isRunning()
  await sbx.kill()
  out.killAgain = await Sandbox.kill(sbx.sandboxId)
  try {
    await Sandbox.connect(sbx.sandboxId)
    out.connectKilled = 'no error'
  } catch (e) {
    out.connectKilled = name(e)
  }

  step('errors')
  try {
    await Sandbox.create({ apiKey: 'not-a-chaser-key' })
    out.badKey = 'no error'
  } catch (e) {
    out.badKey = { error: name(e), isAuthenticationError: e instanceof AuthenticationError }
  }
  out.killUnknown = await Sandbox.kill('s-doesnotexist')
  try {
    await Sandbox.getInfo('s-doesnotexist')
    out.infoUnknown = 'no error'
  } catch (e) {
    out.infoUnknown = { error: name(e), isNotFoundError: e instanceof NotFoundError }
  }
  const other = process.env.OTHER_ID
  out.killOther = await Sandbox.kill(other)
  try {
    await Sandbox.connect(other)
    out.connectOther = 'no error'
  } catch (e) {
    out.connectOther = { error: name(e), isNotFoundError: e instanceof SandboxNotFoundError }
  }
  out.last = 'done'
} catch (e) {
  out.error = `${name(e)}: ${e?.message}`
}
console.log(JSON.stringify(out))
