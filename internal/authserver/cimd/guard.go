package cimd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"syscall"
)

// maxRedirects is how many redirects one fetch follows. A client's metadata
// document has one home; a short chain tolerates a moved document without
// letting a host bounce the fetcher around.
const maxRedirects = 3

// blockedPrefixes are the ranges a client metadata fetch must never reach
// (RFC 9728 §7.7, MCP security best practices § SSRF): everything that is
// not a globally routable unicast address, because behind any of them may
// sit an admin API, a database or a cloud metadata service. IPv4-mapped
// IPv6 addresses are unmapped before they are compared.
var blockedPrefixes = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),       // "this network"; 0.0.0.0 reaches the local host
	netip.MustParsePrefix("10.0.0.0/8"),      // RFC 1918
	netip.MustParsePrefix("100.64.0.0/10"),   // RFC 6598 carrier-grade NAT
	netip.MustParsePrefix("127.0.0.0/8"),     // loopback
	netip.MustParsePrefix("169.254.0.0/16"),  // link-local, incl. 169.254.169.254 cloud metadata
	netip.MustParsePrefix("172.16.0.0/12"),   // RFC 1918
	netip.MustParsePrefix("192.0.0.0/24"),    // IETF protocol assignments
	netip.MustParsePrefix("192.0.2.0/24"),    // TEST-NET-1
	netip.MustParsePrefix("192.168.0.0/16"),  // RFC 1918
	netip.MustParsePrefix("198.18.0.0/15"),   // benchmarking
	netip.MustParsePrefix("198.51.100.0/24"), // TEST-NET-2
	netip.MustParsePrefix("203.0.113.0/24"),  // TEST-NET-3
	netip.MustParsePrefix("224.0.0.0/4"),     // multicast
	netip.MustParsePrefix("240.0.0.0/4"),     // reserved, incl. broadcast
	netip.MustParsePrefix("::/128"),          // unspecified
	netip.MustParsePrefix("::1/128"),         // loopback
	netip.MustParsePrefix("100::/64"),        // discard-only
	netip.MustParsePrefix("2001:db8::/32"),   // documentation
	netip.MustParsePrefix("fc00::/7"),        // unique local
	netip.MustParsePrefix("fe80::/10"),       // link-local
	netip.MustParsePrefix("fec0::/10"),       // deprecated site-local
	netip.MustParsePrefix("ff00::/8"),        // multicast
	netip.MustParsePrefix("2001::/32"),       // Teredo: tunnels to an IPv4 address we cannot vet
	netip.MustParsePrefix("64:ff9b:1::/48"),  // local-use NAT64
	netip.MustParsePrefix("::ffff:0:0:0/96"), // IPv4-translated (RFC 2765)
	netip.MustParsePrefix("::/96"),           // deprecated IPv4-compatible
}

var (
	nat64Prefix = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour   = netip.MustParsePrefix("2002::/16")
)

// forbidden says why addr must not be dialled, or "" when it may be. IPv6
// addresses that embed an IPv4 address (IPv4-mapped, NAT64, 6to4) are judged
// by the IPv4 address they lead to, so that ::ffff:127.0.0.1 or
// 64:ff9b::a9fe:a9fe cannot smuggle a blocked destination past the check.
func forbidden(addr netip.Addr) string {
	if !addr.IsValid() {
		return "invalid address"
	}
	addr = addr.Unmap().WithZone("")
	if addr.Is6() {
		b := addr.As16()
		switch {
		case nat64Prefix.Contains(addr):
			return forbidden(netip.AddrFrom4([4]byte(b[12:16])))
		case sixToFour.Contains(addr):
			return forbidden(netip.AddrFrom4([4]byte(b[2:6])))
		}
	}
	switch {
	case addr.IsLoopback():
		return "loopback address"
	case addr.IsPrivate():
		return "private address"
	case addr.IsLinkLocalUnicast(), addr.IsLinkLocalMulticast():
		return "link-local address"
	case addr.IsUnspecified():
		return "unspecified address"
	case addr.IsMulticast():
		return "multicast address"
	case !addr.IsGlobalUnicast():
		return "not a unicast address"
	}
	for _, p := range blockedPrefixes {
		if p.Contains(addr) {
			return "reserved address"
		}
	}
	return ""
}

// normalHost is the form a host name is compared in: lower case, without
// the brackets of an IPv6 literal or the trailing dot of a fully qualified
// name.
func normalHost(host string) string {
	host = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSuffix(host, "]"), "["), ".")
	return strings.ToLower(host)
}

// allowed reports whether host is exempt from the address rules.
func (f *Fetcher) allowed(host string) bool {
	_, ok := f.allowHosts[normalHost(host)]
	return ok
}

// resolve returns host's addresses: an IP literal is its own answer and is
// never looked up, so that a resolver cannot be asked to reinterpret it.
func (f *Fetcher) resolve(ctx context.Context, host string) ([]netip.Addr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{a}, nil
	}
	addrs, err := f.resolver(ctx, host)
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", host, err)
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("resolve %s: no addresses", host)
	}
	return addrs, nil
}

// dial is the transport's only way out. It resolves the host once, refuses
// the connection if any address is forbidden, and dials the addresses it
// vetted — never the name again, so a second DNS answer (rebinding) has
// nothing to change. The dialer's Control hook checks the socket's actual
// remote address as well, a second lock on the same door.
func (f *Fetcher) dial(ctx context.Context, network, address string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return nil, err
	}
	exempt := f.allowed(host)
	addrs, err := f.resolve(ctx, host)
	if err != nil {
		return nil, err
	}
	if !exempt {
		for _, a := range addrs {
			if why := forbidden(a); why != "" {
				return nil, fmt.Errorf("%w: %s resolves to %s (%s)", ErrForbiddenAddress, host, a, why)
			}
		}
	}
	d := net.Dialer{Control: func(_, raw string, _ syscall.RawConn) error {
		if exempt {
			return nil
		}
		ap, err := netip.ParseAddrPort(raw)
		if err != nil {
			return fmt.Errorf("%w: unparsable remote address %q", ErrForbiddenAddress, raw)
		}
		if why := forbidden(ap.Addr()); why != "" {
			return fmt.Errorf("%w: %s (%s)", ErrForbiddenAddress, ap.Addr(), why)
		}
		return nil
	}}
	var errs []error
	for _, a := range addrs {
		conn, err := d.DialContext(ctx, network, net.JoinHostPort(a.String(), port))
		if err == nil {
			return conn, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, errors.Join(errs...)
}

// checkRedirect applies the client id rules of scheme and credentials to
// every hop; the address rules apply to it in dial like to the first request.
func (f *Fetcher) checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) > maxRedirects {
		return fmt.Errorf("%w: more than %d redirects", ErrRedirect, maxRedirects)
	}
	if err := f.checkScheme(req.URL.Scheme, req.URL.Hostname()); err != nil {
		return fmt.Errorf("%w: %w", ErrRedirect, err)
	}
	if req.URL.User != nil {
		return fmt.Errorf("%w: credentials in redirect location", ErrRedirect)
	}
	return nil
}

// checkScheme allows https, and http only for an allow-listed host when
// AllowHTTP is set.
func (f *Fetcher) checkScheme(scheme, host string) error {
	switch {
	case scheme == "https":
		return nil
	case scheme == "http" && f.allowHTTP && f.allowed(host):
		return nil
	}
	return fmt.Errorf("scheme %q not allowed for host %q", scheme, host)
}
