package process

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// A command line that is one simple command — a program and plain words,
// nothing the shell would quote, expand, redirect or parse — is one that
// bash runs by replacing itself with the program: `bash -c 'ls -l /tmp'`
// execs /usr/bin/ls in the same process. For such a line the manager
// makes that exec itself and skips bash's own start (~0.5 ms of CPU and
// of wall time on the test host, a quarter of an exec's round trip): the
// same program, argv, working directory, process and exit status, and the
// environment bash would pass on, with PWD, OLDPWD, SHLVL and _ set as
// bash sets them (the order of the variables may differ: bash passes its
// hash table's). Anything else goes to bash as before: a keyword or a
// builtin (but `true`, `false` and `echo` with plain words, whose programs
// behave alike), a character outside [A-Za-z0-9_./,:+@%-] (and `=` after
// the first word), a variable bash reads or rewrites at its start, a
// program that is not found on an absolute PATH or not executable by
// everyone, and an exec that fails.

// direct is what bash would exec for a command line.
type direct struct {
	path string
	argv []string
	env  []string
}

// directCommand returns what bash would exec for command in cwd with env,
// or false when command is not a plain simple command (see above).
func directCommand(command, cwd string, env []string) (direct, bool) {
	argv, ok := plainWords(command)
	if !ok || !directName(argv) {
		return direct{}, false
	}
	path, ok := findProgram(argv[0], env)
	if !ok {
		return direct{}, false
	}
	env, ok = bashEnv(env, cwd, path)
	if !ok {
		return direct{}, false
	}
	return direct{path: path, argv: argv, env: env}, true
}

// plainWords splits a command line on blanks when every word is made of
// bytes no shell treats specially.
func plainWords(s string) ([]string, bool) {
	words := strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == '\t' })
	if len(words) == 0 {
		return nil, false
	}
	for i, w := range words {
		for j := 0; j < len(w); j++ {
			switch c := w[j]; {
			case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
			case strings.IndexByte("_./,:+@%-", c) >= 0:
			case c == '=' && i > 0: // in the first word: an assignment
			default:
				return nil, false
			}
		}
	}
	return words, true
}

// directName reports whether bash would look argv[0] up as a program:
// not a reserved word, not a builtin but for the three whose programs do
// the same with these arguments.
func directName(argv []string) bool {
	name := argv[0]
	if strings.HasPrefix(name, "%") {
		return false // a job: bash runs `fg %1` for `%1`
	}
	switch name {
	case "true", "false":
		return len(argv) == 1 // the programs take --help, --version
	case "echo":
		for _, a := range argv[1:] {
			if strings.HasPrefix(a, "-") { // options differ between them
				return false
			}
		}
		return true
	}
	return !bashWords[name]
}

// bashWords are bash 5.2's reserved words and builtins (`compgen -k`,
// `compgen -b`) that the character set above lets through.
var bashWords = func() map[string]bool {
	m := make(map[string]bool)
	for _, w := range strings.Fields(`if then else elif fi case esac for select
		while until do done in function time coproc
		. : alias bg bind break builtin caller cd command compgen complete
		compopt continue declare dirs disown echo enable eval exec exit
		export false fc fg getopts hash help history jobs kill let local
		logout mapfile popd printf pushd pwd read readarray readonly return
		set shift shopt source suspend test times trap true type typeset
		ulimit umask unalias unset wait`) {
		m[w] = true
	}
	return m
}()

// findProgram resolves a command's name as bash would, or reports false
// where bash's answer could differ: a relative PATH entry (relative to the
// command's directory, not the agent's), no PATH (bash's own default), a
// name found first as something other than a file every user may execute.
func findProgram(name string, env []string) (string, bool) {
	if strings.Contains(name, "/") {
		return name, name[0] == '/' && plainProgram(name)
	}
	path, ok := envPath(env)
	if !ok {
		return "", false
	}
	for _, dir := range strings.Split(path, ":") {
		if !strings.HasPrefix(dir, "/") {
			return "", false
		}
		f := dir + "/" + name // as bash joins them, for _
		if strings.HasSuffix(dir, "/") {
			f = dir + name
		}
		fi, err := os.Stat(f)
		switch {
		case err == nil && fi.IsDir():
			continue // bash skips directories too
		case err == nil:
			return f, plainMode(fi)
		case !os.IsNotExist(err):
			return "", false
		}
	}
	return "", false
}

// plainProgram reports whether path is a regular file everyone may run.
func plainProgram(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && plainMode(fi)
}

func plainMode(fi os.FileInfo) bool {
	return fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 == 0o111
}

// bashSpecial are the variables bash reads at its start or sets, rewrites
// or drops for its children (checked against `env` under bash 5.2); any
// of them in a command's environment sends the command to bash.
var bashSpecial = func() map[string]bool {
	m := make(map[string]bool)
	for _, w := range strings.Fields(`ENV SHELLOPTS POSIXLY_CORRECT EXECIGNORE
		IFS LINENO OPTERR OPTIND PS4 PPID RANDOM SRANDOM SECONDS HISTCMD
		EPOCHSECONDS EPOCHREALTIME FUNCNAME GROUPS DIRSTACK UID EUID PS1 PS2
		COMP_WORDBREAKS`) {
		m[w] = true
	}
	return m
}()

// bashEnv returns the environment bash passes to a program it execs for
// `bash -c` (path being the program), or false when bash would change it
// in ways not copied here.
func bashEnv(env []string, cwd, path string) ([]string, bool) {
	out := make([]string, 0, len(env)+3)
	seen := make(map[string]bool, len(env))
	hasPWD, hasSHLVL := false, false
	for _, kv := range env {
		name, val, ok := strings.Cut(kv, "=")
		if !ok || name == "" || seen[name] {
			return nil, false
		}
		seen[name] = true
		if strings.HasPrefix(name, "BASH") || bashSpecial[name] || strings.HasPrefix(val, "() {") {
			return nil, false
		}
		switch name {
		case "LC_ALL":
			// bash warns when it cannot set it: C and POSIX always work.
			if val != "C" && val != "POSIX" {
				return nil, false
			}
		case "PWD":
			// Kept when it names the working directory, else the
			// directory's real path.
			hasPWD = true
			if !samePlace(val, cwd) {
				kv = "PWD=" + realDir(cwd)
			}
		case "OLDPWD":
			if fi, err := os.Stat(val); err != nil || !fi.IsDir() {
				continue // bash drops one that is not a directory
			}
		case "SHLVL":
			// bash adds 1 at its start and takes it back for the
			// exec; it rewrites other forms, resets from 1000.
			n, err := strconv.Atoi(val)
			if err != nil || n < 0 || n >= 999 || strconv.Itoa(n) != val {
				return nil, false
			}
			hasSHLVL = true
		case "_":
			continue // set to the program below
		}
		out = append(out, kv)
	}
	if !hasPWD {
		out = append(out, "PWD="+realDir(cwd))
	}
	if !hasSHLVL {
		out = append(out, "SHLVL=0")
	}
	return append(out, "_="+path), true
}

// samePlace reports whether pwd is an absolute name of the directory cwd.
func samePlace(pwd, cwd string) bool {
	if !strings.HasPrefix(pwd, "/") {
		return false
	}
	a, err := os.Stat(pwd)
	if err != nil {
		return false
	}
	b, err := os.Stat(cwd)
	return err == nil && os.SameFile(a, b)
}

// realDir is cwd with its symbolic links resolved, as getcwd(3) gives it.
func realDir(cwd string) string {
	if r, err := filepath.EvalSymlinks(cwd); err == nil {
		return r
	}
	return cwd
}
