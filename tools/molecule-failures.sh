#!/usr/bin/env bash
# Print the failed tasks of a molecule log: each "fatal:", "failed:" or UNREACHABLE result with
# the task it belongs to. `make molecule` calls it when a scenario fails, so that the cause is
# at the end of the output, where CI's tail shows it, instead of thousands of lines above.
#
#   tools/molecule-failures.sh LOG
set -euo pipefail
log=${1:?usage: tools/molecule-failures.sh LOG}

echo "== failed tasks in $log (the whole log is there)"
# Molecule boxes the output of ansible-playbook ("  │ " before each line) and colours it.
sed -e 's/\x1b\[[0-9;]*m//g' -e 's/^ *[│┌└] \{0,1\}//' "$log" | awk '
  /^(PLAY|TASK|RUNNING HANDLER) \[/ { header = $0 }
  /^(fatal|failed): \[|UNREACHABLE!/ { print "--"; print header; shown = 0; printing = 1; found = 1 }
  printing {
    if ($0 ~ /^ *$/ || shown == 40) { printing = 0; next }
    print; shown++
  }
  END { if (!found) print "(no failed task: see molecule'"'"'s ERROR lines above)" }
'
