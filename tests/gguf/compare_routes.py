#!/usr/bin/env python3
# rsrc's routing (RSR_TRACE_ROUTING: "POS LAYER E1 E2 ..." per token and layer, in any order)
# against maple_model.py --routes ("POS LAYER E1 E2 ... GAP"): every position below N and every
# layer must be there, with the same set of chosen experts, but where the reference's GAP (its k-th
# largest router probability less the (k+1)-th) is below MARGIN: a near tie, which the int8
# activations of rsrc may tip either way (reported, not failed). Fails, naming position and layer,
# on any other difference, and when the prompt used fewer than two experts of a layer (a test that
# could not see routing).
# Usage: compare_routes.py RSRC_ROUTES REFERENCE_ROUTES N MARGIN
import sys


def main():
    path, ref_path, n, margin = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    rsrc = {}
    with open(path) as f:
        for line in f:
            v = line.split()
            rsrc[(int(v[0]), int(v[1]))] = sorted(int(e) for e in v[2:])
    bad, ties, used = [], [], {}
    with open(ref_path) as f:
        for line in f:
            v = line.split()
            key, chosen, gap = (int(v[0]), int(v[1])), sorted(int(e) for e in v[2:-1]), float(v[-1])
            if key[0] >= n:
                continue
            used.setdefault(key[1], set()).update(chosen)
            got = rsrc.get(key)
            if got == chosen:
                continue
            (ties if got is not None and gap < margin else bad).append((key, got, chosen, gap))
    for (pos, layer), got, want, gap in ties:
        print('compare_routes.py: position %d layer %d: rsrc chose %s, the reference %s, in a near tie (gap %.3g)'
              % (pos, layer, got, want, gap))
    for (pos, layer), got, want, gap in bad:
        print('compare_routes.py: position %d layer %d: rsrc chose %s, the reference %s (gap %.3g, margin %g)'
              % (pos, layer, got, want, gap, margin), file=sys.stderr)
    few = [l for l, s in used.items() if len(s) < 2]
    if few:
        print('compare_routes.py: layers %s used fewer than two experts over the prompt' % few, file=sys.stderr)
    if bad or few or not used:
        sys.exit(1)
    print('compare_routes.py: %s: the experts of %d tokens x %d layers agree with the reference (%d near ties)'
          % (path, n, len(used), len(ties)))


if __name__ == '__main__':
    main()
