{#- Interest tags derived from the catalogue alone (no model): the department and leaf category
    from category_path, the style from title words (seed tag_rules, rule title_keyword; brand name
    removed), the brand tier from seed tag_rules (rule brand) or, for an unlisted brand, the price
    tercile within the leaf category. Only tags of the vocabulary seed are kept. -#}

with items as (
    select
        item_id,
        category_path,
        category_l1,
        category_l3,
        price,
        brand,
        ' ' || case
            when brand is not null and title like brand || ' %' then substr(title, length(brand) + 2)
            else coalesce(title, '')
        end || ' ' as title_words
    from {{ ref('stg_shop__items') }}
),

department as (
    select item_id, 'dept:' || {{ slugify('category_l1') }} as tag, 1.0 as score, 'category_path' as rule
    from items
    where category_l1 is not null
),

leaf as (
    select
        item_id,
        'cat:' || {{ slugify('category_l1') }} || '_' || {{ slugify('category_l3') }} as tag,
        1.0 as score,
        'category_path' as rule
    from items
    where category_l3 is not null
),

style as (
    select i.item_id, k.tag, max(k.score) as score, 'title_keyword' as rule
    from items as i
    inner join {{ ref('tag_rules') }} as k on k.rule = 'title_keyword' and i.title_words like '% ' || k.pattern || ' %'
    group by i.item_id, k.tag
),

listed_tier as (
    select i.item_id, b.tag, 1.0 as score, 'brand' as rule
    from items as i
    inner join {{ ref('tag_rules') }} as b on b.rule = 'brand' and b.pattern = i.brand
),

price_tier as (
    select
        item_id,
        case ntile(3) over (partition by category_path order by price, item_id)
            when 1 then 'tier:budget' when 2 then 'tier:mid' else 'tier:premium'
        end as tag,
        1.0 as score,
        'price_tercile' as rule
    from items
    where price is not null
),

tier as (
    select * from listed_tier
    union all
    select p.* from price_tier as p
    where not exists (select 1 from listed_tier as l where l.item_id = p.item_id)
),

all_tags as (
    select * from department
    union all select * from leaf
    union all select * from style
    union all select * from tier
)

select
    t.item_id,
    t.tag,
    v.kind as tag_kind,
    cast(t.score as double precision) as score,
    t.rule
from all_tags as t
inner join {{ ref('tag_vocabulary') }} as v on v.tag = t.tag
