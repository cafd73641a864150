#!/usr/bin/env python3
# rsrc's next-token distributions (the logits rsr-run wrote after each prefix: WORK/NAME.K.f32 for
# K = 1..N) beside a reference's: REF.json holds {"probs": [...]} (upstream llama.cpp) or
# {"logits": [...]} (a float reference), one list per prefix. Passes when the most likely token
# is the same at all but two positions, and there only in a near tie (the reference's own choice
# at most TIE more probable, under the reference, than rsrc's), the largest KL(reference || rsrc)
# is below KL and no probability is off by more than DP.
# Usage: compare_probs.py WORK NAME N REF.json WHO [TIE KL DP]
import json
import math
import struct
import sys

work, name, n, ref_path, who = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
tie_max, kl_max, dp_max = (float(a) for a in (sys.argv[6:9] if len(sys.argv) > 6 else ('2e-3', '0.01', '0.01')))


def softmax(logits):
    m = max(logits)
    e = [math.exp(x - m) for x in logits]
    s = sum(e)
    return [x / s for x in e]


ref = json.load(open(ref_path))
ref = ref['probs'] if 'probs' in ref else [softmax(x) for x in ref['logits']]
worst_kl = worst_dp = worst_tie = 0.0
same = 0
for k in range(1, n + 1):
    raw = open('%s/%s.%d.f32' % (work, name, k), 'rb').read()
    p, r = softmax(struct.unpack('<%df' % (len(raw) // 4), raw)), ref[k - 1]
    top, rtop = max(range(len(p)), key=p.__getitem__), max(range(len(r)), key=r.__getitem__)
    same += top == rtop
    worst_tie = max(worst_tie, r[rtop] - r[top])  # what the reference's best has over rsrc's best
    worst_kl = max(worst_kl, sum(a * math.log(a / b) for a, b in zip(r, p) if a > 0 and b > 0))
    worst_dp = max(worst_dp, max(abs(a - b) for a, b in zip(p, r)))
print('%s: %s and rsrc agree on the most likely token at %d of %d positions (elsewhere a near tie: '
      '%s puts at most %.2e more on its own); largest KL(%s || rsrc) %.2e, largest |dp| %.2e'
      % (name, who, same, n, who, worst_tie, who, worst_kl, worst_dp))
if same < n - 2 or worst_tie > tie_max or worst_kl > kl_max or worst_dp > dp_max:
    sys.exit('%s: rsrc does not agree with %s closely enough' % (name, who))
