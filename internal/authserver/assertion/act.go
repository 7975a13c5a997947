package assertion

import "github.com/mandate-mcp/mandate/internal/identity"

// maxActDepth bounds how deep ParseAct follows nested act claims. Real
// chains are two or three links; the bound keeps a hostile token from
// costing more.
const maxActDepth = 16

// ActClaim builds the RFC 8693 §4.1 act claim for a delegation chain given
// current actor first: the current actor is the outermost object and each
// earlier actor nests inside the one after it. It returns nil for an empty
// chain, meaning the token carries no act claim.
func ActClaim(chain []identity.Actor) map[string]any {
	var act map[string]any
	for i := len(chain) - 1; i >= 0; i-- {
		a := map[string]any{}
		if chain[i].Subject != "" {
			a["sub"] = chain[i].Subject
		}
		if chain[i].ClientID != "" {
			a["client_id"] = chain[i].ClientID
		}
		if act != nil {
			a["act"] = act
		}
		act = a
	}
	return act
}

// ParseAct reads the act claim of a token's claims back into a chain,
// current actor first. Links that are not objects, or name neither a
// subject nor a client, end the chain there: only the current actor counts
// for decisions, and the rest is for the record. It returns nil when claims
// has no usable act claim.
func ParseAct(claims map[string]any) []identity.Actor {
	var chain []identity.Actor
	cur := claims
	for range maxActDepth {
		act, ok := cur["act"].(map[string]any)
		if !ok {
			break
		}
		sub, _ := act["sub"].(string)
		clientID, _ := act["client_id"].(string)
		if sub == "" && clientID == "" {
			break
		}
		chain = append(chain, identity.Actor{Subject: sub, ClientID: clientID})
		cur = act
	}
	return chain
}
