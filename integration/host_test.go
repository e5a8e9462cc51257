package integration

import "os"

func readFileHost(p string) ([]byte, error)  { return os.ReadFile(p) }
func statHost(p string) (os.FileInfo, error) { return os.Stat(p) }
