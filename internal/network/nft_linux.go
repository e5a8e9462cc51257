package network

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// The server's table (family inet, one per data dir):
//
//	chain input   (filter, hook input):   per sandbox: DNS to its own gateway → accept;
//	                                      then iifname "chKEY*" → drop (the host, all its addresses)
//	chain forward (filter, hook forward): per sandbox: iifname IF → jump sb-SLOT;
//	                                      oifname "chKEY*" ct established,related → accept;
//	                                      oifname "chKEY*" → drop (nothing reaches into a sandbox);
//	                                      iifname "chKEY*" → drop (a sandbox without rules)
//	chain sb-SLOT (regular):              not IPv4, or a spoofed source → drop; blocked always
//	                                      (Blocked, the pool's subnet) → drop; allow → accept;
//	                                      deny → drop; private ranges → drop; accept
//	chain postrouting (nat):              ip saddr SUBNET oifname != "chKEY*" → masquerade
//
// Per-sandbox rules carry the sandbox's interface name as user data, so
// they are found and removed with it.

var accept = nftables.ChainPolicyAccept

func (m *Manager) table() *nftables.Table {
	return &nftables.Table{Family: nftables.TableFamilyINet, Name: TableName(m.key)}
}

func (m *Manager) chain(name string) *nftables.Chain {
	return &nftables.Chain{Name: name, Table: m.table()}
}

// resetTable replaces the table with a fresh one holding the base rules,
// in one transaction: no moment without the fence.
func (m *Manager) resetTable() error {
	c, err := nftables.New()
	if err != nil {
		return err
	}
	t := m.table()
	c.AddTable(t) // so that the delete below cannot fail for want of one
	c.DelTable(t)
	c.AddTable(t)
	prefix := IfPrefix(m.key)
	in := c.AddChain(&nftables.Chain{Name: "input", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookInput, Priority: nftables.ChainPriorityFilter, Policy: &accept})
	fwd := c.AddChain(&nftables.Chain{Name: "forward", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter, Policy: &accept})
	post := c.AddChain(&nftables.Chain{Name: "postrouting", Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource, Policy: &accept})
	c.AddRule(&nftables.Rule{Table: t, Chain: in, Exprs: cat(ifname(expr.MetaKeyIIFNAME, prefix, false), verdict(expr.VerdictDrop))})
	c.AddRule(&nftables.Rule{Table: t, Chain: fwd, Exprs: cat(ifname(expr.MetaKeyOIFNAME, prefix, false), established(), verdict(expr.VerdictAccept))})
	c.AddRule(&nftables.Rule{Table: t, Chain: fwd, Exprs: cat(ifname(expr.MetaKeyOIFNAME, prefix, false), verdict(expr.VerdictDrop))})
	c.AddRule(&nftables.Rule{Table: t, Chain: fwd, Exprs: cat(ifname(expr.MetaKeyIIFNAME, prefix, false), verdict(expr.VerdictDrop))})
	c.AddRule(&nftables.Rule{Table: t, Chain: post, Exprs: cat(ipv4(), addrIn(12, m.subnet, true),
		ifnameNot(expr.MetaKeyOIFNAME, prefix), []expr.Any{&expr.Masq{}})})
	return c.Flush()
}

// deleteTable removes the table, if it exists.
func (m *Manager) deleteTable() error {
	c, err := nftables.New()
	if err != nil {
		return err
	}
	c.AddTable(m.table())
	c.DelTable(m.table())
	return c.Flush()
}

// addRules adds slot's chain and the rules that send its traffic there.
func (m *Manager) addRules(slot int, pol Policy) error {
	c, err := nftables.New()
	if err != nil {
		return err
	}
	t := m.table()
	name := ifName(m.key, slot)
	gw, addr := m.pool.addrs(slot)
	sb := c.AddChain(&nftables.Chain{Name: "sb-" + name, Table: t})
	var add func(e ...[]expr.Any)
	c.AddRule(&nftables.Rule{Table: t, Chain: sb, Exprs: cat(notIPv4(), verdict(expr.VerdictDrop)), UserData: []byte(name)})
	add = func(e ...[]expr.Any) { // with the protocol, so nft lists "ip daddr 169.254.0.0/16"
		c.AddRule(&nftables.Rule{Table: t, Chain: sb, Exprs: cat(append([][]expr.Any{ipv4()}, e...)...), UserData: []byte(name)})
	}
	add(addrIn(12, netip.PrefixFrom(addr, 32), false), verdict(expr.VerdictDrop))
	for _, p := range append(append([]netip.Prefix(nil), Blocked...), m.subnet) {
		add(addrIn(16, p, true), verdict(expr.VerdictDrop))
	}
	for _, p := range pol.Allow {
		if p.Addr().Is4() {
			add(addrIn(16, p, true), verdict(expr.VerdictAccept))
		}
	}
	for _, p := range pol.Deny {
		if p.Addr().Is4() {
			add(addrIn(16, p, true), verdict(expr.VerdictDrop))
		}
	}
	for _, p := range Private {
		if p.Addr().Is4() {
			add(addrIn(16, p, true), verdict(expr.VerdictDrop))
		}
	}
	c.AddRule(&nftables.Rule{Table: t, Chain: sb, Exprs: verdict(expr.VerdictAccept), UserData: []byte(name)})
	c.InsertRule(&nftables.Rule{Table: t, Chain: m.chain("forward"), UserData: []byte(name),
		Exprs: cat(ifname(expr.MetaKeyIIFNAME, name, true), []expr.Any{&expr.Verdict{Kind: expr.VerdictJump, Chain: sb.Name}})})
	for _, proto := range []byte{unix.IPPROTO_UDP, unix.IPPROTO_TCP} {
		c.InsertRule(&nftables.Rule{Table: t, Chain: m.chain("input"), UserData: []byte(name),
			Exprs: cat(ifname(expr.MetaKeyIIFNAME, name, true), ipv4(), addrIn(16, netip.PrefixFrom(gw, 32), true),
				[]expr.Any{
					&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
					&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
					&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
					&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(53)},
				}, verdict(expr.VerdictAccept))})
	}
	return c.Flush()
}

// delRules removes slot's rules and chain; missing ones are fine.
func (m *Manager) delRules(slot int) error {
	c, err := nftables.New()
	if err != nil {
		return err
	}
	t := m.table()
	name := ifName(m.key, slot)
	for _, ch := range []string{"input", "forward"} {
		rules, err := c.GetRules(t, m.chain(ch))
		if err != nil {
			if errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ENOENT) {
				return nil // no table: nothing to remove
			}
			return fmt.Errorf("list rules of %s: %w", ch, err)
		}
		for _, r := range rules {
			if bytes.Equal(r.UserData, []byte(name)) {
				if err := c.DelRule(r); err != nil {
					return err
				}
			}
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("delete rules of %s: %w", name, err)
	}
	chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		return err
	}
	for _, ch := range chains {
		if ch.Table.Name == t.Name && ch.Name == "sb-"+name {
			c.FlushChain(ch)
			c.DelChain(ch)
			if err := c.Flush(); err != nil {
				return fmt.Errorf("delete chain sb-%s: %w", name, err)
			}
		}
	}
	return nil
}

func cat(parts ...[]expr.Any) []expr.Any {
	var out []expr.Any
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func verdict(k expr.VerdictKind) []expr.Any { return []expr.Any{&expr.Verdict{Kind: k}} }

// ifname matches an interface name: the whole name when exact, else a
// prefix (nft's "ch1234*").
func ifname(key expr.MetaKey, name string, exact bool) []expr.Any {
	data := []byte(name)
	if exact {
		data = make([]byte, unix.IFNAMSIZ)
		copy(data, name)
	}
	return []expr.Any{&expr.Meta{Key: key, Register: 1}, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: data}}
}

func ifnameNot(key expr.MetaKey, prefix string) []expr.Any {
	return []expr.Any{&expr.Meta{Key: key, Register: 1}, &expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte(prefix)}}
}

func ipv4() []expr.Any {
	return []expr.Any{&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1}, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.NFPROTO_IPV4}}}
}

func notIPv4() []expr.Any {
	return []expr.Any{&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1}, &expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{unix.NFPROTO_IPV4}}}
}

// addrIn matches the IPv4 address at offset (12 source, 16 destination)
// of the network header against p: inside it when in, else outside.
func addrIn(offset uint32, p netip.Prefix, in bool) []expr.Any {
	mask := netipMask(p.Bits())
	net4 := p.Masked().Addr().As4()
	op := expr.CmpOpEq
	if !in {
		op = expr.CmpOpNeq
	}
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: 4},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: mask, Xor: []byte{0, 0, 0, 0}},
		&expr.Cmp{Op: op, Register: 1, Data: net4[:]},
	}
}

func netipMask(bits int) []byte {
	m := make([]byte, 4)
	for i := range bits {
		m[i/8] |= 0x80 >> (i % 8)
	}
	return m
}

func established() []expr.Any {
	return []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(expr.CtStateBitESTABLISHED | expr.CtStateBitRELATED), Xor: binaryutil.NativeEndian.PutUint32(0)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{0, 0, 0, 0}},
	}
}
