package vm

import (
	"fmt"
	"io"
	"sort"
)

// cpioFile is one entry of a newc cpio archive (what the kernel unpacks
// as an initramfs; archives may be concatenated).
type cpioFile struct {
	Name string
	Mode uint32 // with the type bits: 0o040755 for a directory
	Data []byte
}

// writeCpio writes files as a newc archive with its trailer.
func writeCpio(w io.Writer, files []cpioFile) error {
	sort.Slice(files, func(i, j int) bool { return files[i].Name < files[j].Name })
	var n int64
	write := func(b []byte) error {
		m, err := w.Write(b)
		n += int64(m)
		return err
	}
	pad := func() error {
		if r := n % 4; r != 0 {
			return write(make([]byte, 4-r))
		}
		return nil
	}
	entry := func(ino int, f cpioFile) error {
		nlink := 1
		if f.Mode&0o170000 == 0o040000 {
			nlink = 2
		}
		hdr := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
			ino, f.Mode, 0, 0, nlink, 0, len(f.Data), 0, 0, 0, 0, len(f.Name)+1, 0)
		if err := write([]byte(hdr + f.Name + "\x00")); err != nil {
			return err
		}
		if err := pad(); err != nil {
			return err
		}
		if err := write(f.Data); err != nil {
			return err
		}
		return pad()
	}
	for i, f := range files {
		if err := entry(i+1, f); err != nil {
			return err
		}
	}
	if err := entry(0, cpioFile{Name: "TRAILER!!!"}); err != nil {
		return err
	}
	if r := n % 512; r != 0 {
		return write(make([]byte, 512-r))
	}
	return nil
}
