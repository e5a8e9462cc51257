package process

import (
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

func TestPlainWords(t *testing.T) {
	t.Parallel()
	plain := []string{
		"true", "echo hi", "  ls  -la\t/tmp ", "env FOO=bar printenv FOO",
		"git log --format=%H -1", "node -v", "python3 -m http.server 8080",
		"cp a.txt b,c:d+e@f", "/usr/bin/env",
	}
	for _, s := range plain {
		if _, ok := plainWords(s); !ok {
			t.Errorf("plainWords(%q) = false, want true", s)
		}
	}
	shell := []string{
		"", " ", "FOO=bar env", "echo $HOME", "echo 'a b'", `echo "a"`, `echo a\ b`,
		"ls *", "ls ?", "ls [ab]", "echo {a,b}", "cd ~", "echo hi > f", "cat < f",
		"a | b", "a && b", "a; b", "a &", "echo `id`", "echo $(id)", "(true)",
		"! true", "true # c", "echo a\nb", "echo a\rb", "echo ^a", "echo é",
	}
	for _, s := range shell {
		if _, ok := plainWords(s); ok {
			t.Errorf("plainWords(%q) = true, want false", s)
		}
	}
}

func TestDirectName(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		line string
		want bool
	}{
		{"true", true}, {"false", true}, {"echo hi there", true}, {"echo", true},
		{"true --help", false}, {"false x", false}, {"echo -n hi", false}, {"echo --version", false},
		{"cd /tmp", false}, {"exit 3", false}, {"export A=1", false}, {"printf x", false},
		{"test -e /", false}, {"kill 1", false}, {"pwd", false}, {"time ls", false},
		{"if", false}, {"exec ls", false}, {"%1", false}, {"ls %1", true}, {"source f", false}, {". f", false}, {"ls", true},
	} {
		argv, ok := plainWords(c.line)
		if !ok {
			t.Fatalf("plainWords(%q) = false", c.line)
		}
		if got := directName(argv); got != c.want {
			t.Errorf("directName(%q) = %v, want %v", c.line, got, c.want)
		}
	}
}

// bashManager is a manager whose shell is bash, the one the direct exec
// stands in for.
func bashManager(t *testing.T) *Manager {
	t.Helper()
	if _, err := os.Stat("/bin/bash"); err != nil {
		t.Fatal("this test compares with bash: /bin/bash is missing")
	}
	m := NewManager(slog.New(slog.DiscardHandler), "/bin/bash", false)
	t.Cleanup(m.KillAll)
	return m
}

// run starts spec on m, through bash or (when it is plain) directly, and
// returns what the command did.
func run(t *testing.T, m *Manager, spec Spec, tryDirect bool) (code int, stdout, stderr string) {
	t.Helper()
	p, err := m.start(spec, tryDirect)
	if err != nil {
		t.Fatalf("start %q: %v", spec.Command, err)
	}
	wait(t, p)
	stdout, stderr = output(p)
	info := p.Info()
	if info.ExitCode == nil {
		t.Fatalf("%q: no exit code", spec.Command)
	}
	return *info.ExitCode, stdout, stderr
}

// sortedLines makes `env` outputs comparable: bash passes its variables
// in its own order.
func sortedLines(s string) string {
	lines := strings.Split(s, "\n")
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// TestDirectLikeBash runs each command line twice, through bash and the
// way the manager runs it, and wants the same exit status, output and
// environment (as a set): the direct exec is only right when nobody can
// tell it from bash's.
func TestDirectLikeBash(t *testing.T) {
	t.Parallel()
	m := bashManager(t)

	dir := t.TempDir()
	work := filepath.Join(dir, "work")
	link := filepath.Join(dir, "link")
	if err := os.Mkdir(work, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(work, link); err != nil {
		t.Fatal(err)
	}
	noShebang := filepath.Join(dir, "noshebang")
	if err := os.WriteFile(noShebang, []byte("echo from a script without #!\nexit 4\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	notExec := filepath.Join(dir, "notexec")
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\necho no\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ownerOnly := filepath.Join(dir, "owneronly")
	if err := os.WriteFile(ownerOnly, []byte("#!/bin/sh\necho owner\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	// A program everyone may run in a directory only root may enter: the
	// agent (root) finds it, the user's exec fails, bash says why.
	closed := filepath.Join(dir, "closed")
	if err := os.Mkdir(closed, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(closed, "prog"), []byte("#!/bin/sh\necho ran\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{dir, filepath.Dir(dir)} { // t.TempDir's are 0700
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	nobody := User{Name: "nobody", Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	path := "PATH=/usr/local/bin:/usr/bin:/bin"

	cases := []struct {
		line   string
		cwd    string
		env    []string
		user   User
		direct bool // whether the manager skips bash for it
	}{
		{line: "id -u", cwd: "/", user: nobody, direct: true},
		{line: filepath.Join(closed, "prog"), cwd: "/", user: nobody, direct: true},
		{line: "prog", cwd: "/", env: []string{"PATH=" + closed + ":/usr/bin"}, user: nobody, direct: true},
		{line: "true", direct: true},
		{line: "false", direct: true},
		{line: "echo hi  there", direct: true},
		{line: "echo", direct: true},
		{line: "env", direct: true},
		{line: "/usr/bin/env", direct: true},
		{line: "env", cwd: link, direct: true},
		{line: "env", cwd: link, env: []string{"PWD=" + link}, direct: true},
		{line: "env", cwd: work, env: []string{"PWD=" + link}, direct: true},
		{line: "env", cwd: work, env: []string{"PWD=/"}, direct: true},
		{line: "env", env: []string{"PWD=relative"}, direct: true},
		{line: "env", env: []string{"OLDPWD=/usr", "_=/x", "SHLVL=3"}, direct: true},
		{line: "env", env: []string{"OLDPWD=/no/such/dir", "SHLVL=0"}, direct: true},
		{line: "env", env: []string{"LC_ALL=C", "LANG=C.UTF-8", "HOME=/root", "TERM=xterm", "A=x\ny"}, direct: true},
		{line: "env", env: []string{"not-a-name=1", "SHELL=/bin/sh", "HOSTNAME=h"}, direct: true},
		{line: "printenv PWD SHLVL _", direct: true},
		{line: "ls -d / /nonexistent", direct: true},
		{line: "cat /nonexistent", direct: true},
		{line: "sh -c exit", direct: true},
		{line: "id -u", direct: true},
		{line: noShebang, direct: true}, // the exec fails: bash runs it
		{line: notExec},
		{line: ownerOnly},
		{line: "nonexistent-command-xyz"},
		{line: "echo -n hi"},
		{line: "true --version"},
		{line: "env", env: []string{"SHLVL=04"}},
		{line: "env", env: []string{"SHLVL=998"}, direct: true},
		{line: "env", env: []string{"SHLVL=999"}},
		{line: "env", env: []string{"SHLVL=abc"}},
		{line: "env", env: []string{"BASH_ENV=/dev/null"}},
		{line: "env", env: []string{"SHELLOPTS=xtrace"}},
		{line: "env", env: []string{"LC_ALL=xx_XX.UTF-8"}},
		{line: "env", env: []string{"IFS=x", "OPTIND=5"}},
		{line: "env", env: []string{"A=1", "A=2"}},
		{line: "env", env: []string{"PATH=bin:/usr/bin"}},
		{line: "env", env: []string{"PATH=/usr/bin:"}, direct: true}, // found before ""
		{line: "env", env: []string{"PATH=:/usr/bin"}},
		{line: "env", env: []string{"X"}},
		{line: "env", env: []string{"F=() { echo; }"}},
		{line: "echo $HOME"},
	}
	for _, c := range cases {
		env := c.env
		if !slices.ContainsFunc(env, func(kv string) bool { return strings.HasPrefix(kv, "PATH=") }) {
			env = append([]string{path}, env...)
		}
		cwd := c.cwd
		if cwd == "" {
			cwd = work
		}
		spec := Spec{Command: c.line, Cwd: cwd, Env: env, User: c.user}
		if _, ok := directCommand(spec.Command, spec.Cwd, spec.Env); ok != c.direct {
			t.Errorf("%q %q: direct = %v, want %v", c.line, c.env, ok, c.direct)
		}
		code, out, errOut := run(t, m, spec, true)
		bCode, bOut, bErr := run(t, m, spec, false)
		if c.line == "env" || c.line == "/usr/bin/env" {
			out, bOut = sortedLines(out), sortedLines(bOut)
		}
		if code != bCode || out != bOut || errOut != bErr {
			t.Errorf("%q env %q cwd %s:\n got exit %d, stdout %q, stderr %q\nbash: exit %d, stdout %q, stderr %q",
				c.line, c.env, c.cwd, code, out, errOut, bCode, bOut, bErr)
		}
	}
}

// TestDirectEnvNames sets, one at a time, variables that bash might read
// or rewrite at its start: whenever the manager skips bash, `env` must
// print what bash's would.
func TestDirectEnvNames(t *testing.T) {
	t.Parallel()
	m := bashManager(t)
	names := strings.Fields(`BASH BASHOPTS BASHPID BASH_ARGV0 BASH_COMPAT BASH_ENV
		BASH_VERSION BASH_XTRACEFD CDPATH COLUMNS COMP_WORDBREAKS DIRSTACK ENV
		EPOCHREALTIME EPOCHSECONDS EUID EXECIGNORE FCEDIT FIGNORE FUNCNAME
		FUNCNEST GLOBIGNORE GROUPS HISTCMD HISTCONTROL HISTFILE HISTFILESIZE
		HISTIGNORE HISTSIZE HISTTIMEFORMAT HOME HOSTFILE HOSTNAME HOSTTYPE IFS
		IGNOREEOF INPUTRC INSIDE_EMACS LANG LC_ALL LC_COLLATE LC_CTYPE
		LC_MESSAGES LC_NUMERIC LINENO LINES LOGNAME MACHTYPE MAIL MAILCHECK
		MAILPATH OLDPWD OPTERR OPTIND OSTYPE PIPESTATUS POSIXLY_CORRECT
		PPID PROMPT_COMMAND PROMPT_DIRTRIM PS0 PS1 PS2 PS3 PS4 PWD RANDOM
		READLINE_LINE SECONDS SHELL SHELLOPTS SHLVL SRANDOM TERM TIMEFORMAT
		TMOUT TMPDIR TZ UID USER auto_resume histchars _`)
	tried := 0
	for _, name := range names {
		for _, val := range []string{"1", "/tmp", "x y"} {
			spec := Spec{Command: "env", Cwd: "/", Env: []string{"PATH=/usr/bin:/bin", name + "=" + val}}
			if _, ok := directCommand(spec.Command, spec.Cwd, spec.Env); !ok {
				continue
			}
			tried++
			_, out, errOut := run(t, m, spec, true)
			_, bOut, bErr := run(t, m, spec, false)
			if sortedLines(out) != sortedLines(bOut) || errOut != bErr {
				t.Errorf("%s=%s: direct env\n%s\nbash's\n%s\nstderr %q, bash's %q", name, val, out, bOut, errOut, bErr)
			}
		}
	}
	if tried < 100 {
		t.Errorf("only %d of the variables went the direct way: the comparison says little", tried)
	}
}
