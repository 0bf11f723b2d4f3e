# Sourced by the measurement scripts: `run NAME ARGS...` runs `advstudio evaluate` with the
# script's common arguments (the array `common`) and ARGS, its table, JSON, report, store and
# stderr under $out/NAME*, and prints the table with the exit status and the time taken.
# DEVICE (default: CUDA when present), BATCH (default 24), EXTRA (added to every run) and
# PYTHON (the interpreter) come from the environment.
device=(${DEVICE:+--device "$DEVICE"})
run() {
    local name=$1
    shift
    local start
    start=$(date +%s.%N)
    "${PYTHON:-python3}" -m advstudio evaluate "${common[@]}" "${device[@]}" \
        --batch-size "${BATCH:-24}" --db "$out/$name.sqlite" --json "$out/$name.json" \
        --report "$out/$name" "$@" ${EXTRA:-} >"$out/$name.txt" 2>"$out/$name.err"
    local status=$?
    echo "== $name ($*): exit $status in $(python3 -c "print(round($(date +%s.%N) - $start, 1))") s"
    cat "$out/$name.txt"
    [ $status -eq 0 ] || tail -3 "$out/$name.err"
}
