package agent

import "syscall"

// disk is the bytes used and the size of the filesystem at p.
func disk(p string) (used, total int64) {
	var st syscall.Statfs_t
	if syscall.Statfs(p, &st) != nil {
		return 0, 0
	}
	total = int64(st.Blocks) * int64(st.Bsize)
	return total - int64(st.Bfree)*int64(st.Bsize), total
}
