import glob, json, polars as pl, sys
sys.path.insert(0, __import__('os').path.dirname(__file__))
from audit_score import judge, parse
bad = 0; n = 0; ents_bad = 0
for f in glob.glob('specs/.curate/worlds/*/world.parquet'):
    d = pl.read_parquet(f)
    for r in d.iter_rows(named=True):
        o = json.loads(r['objects']); n += 1
        j = judge(r['description'], o, r['background'], r['texture'])
        if not (j['l4'] and j['l1e']):
            bad += 1
            if bad < 5: print('BAD', r['description'], o, j)
        img = {x['entity'] for x in o if x.get('entity')}
        if set(j['entities']) != img: ents_bad += 1
        # alt mentions entity vs my string match
    a = d.filter(pl.col('alt_mentions_entity'))
    miss = [r for r in a.iter_rows(named=True) if r['entity'] not in parse(r['alt_text'])['entities']]
    print(f, 'alt_mentions_entity rows', a.height, 'my parse misses', len(miss), [m['alt_text'] for m in miss[:3]])
print('rows', n, 'description not parsed fully', bad, 'entity mismatch', ents_bad)
