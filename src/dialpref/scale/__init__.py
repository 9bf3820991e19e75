"""Past one process: the same record-to-records stages run inside Ray Data's map (`dialpref label --engine ray`).

`shards` keeps a run's rows as JSONL shards (resume skips the dialogues they hold); `ray_label` builds the
Ray Dataset of dialogues and the labeller actors. Ray is imported only here, and only when asked for.
"""
